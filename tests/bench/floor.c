/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The host's floor for the guests' link: two processes bounce one datagram
 * back and forth over a unix SOCK_DGRAM socket pair (the kind of socket the
 * dgram netdev linking two guests uses) and time each round trip.
 *
 *   floor [-r ROUNDS] [-w WARMUP] [-p] [SIZE...]
 *
 * For each message size (default 64 128 256 512 1024 1500 2048 4096) it
 * prints one CSV line `floor,SIZE,median_us,p99_us`. Bounded: every receive
 * times out after 5 s and the whole run is stopped by alarm() after 10 min.
 * -p pins the two processes to CPUs 0 and 1.
 *
 * Build: gcc -O2 -Wall -o floor floor.c
 */
#define _GNU_SOURCE
#include <sched.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "bench_util.h"

#define MAX_SIZE        65536
#define RECV_TIMEOUT_S  5
#define RUN_LIMIT_S     600

static void pin(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set)) {
        bench_die("sched_setaffinity");
    }
}

/* The echo side: send back every datagram; a zero-length one ends it. */
static void echo(int fd)
{
    static char buf[MAX_SIZE];

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);

        if (n < 0) {
            bench_die("echo recv");
        }
        if (n == 0) {
            exit(0);
        }
        if (send(fd, buf, n, 0) != n) {
            bench_die("echo send");
        }
    }
}

static void round_trip(int fd, char *buf, size_t size)
{
    ssize_t n;

    if (send(fd, buf, size, 0) != (ssize_t)size) {
        bench_die("send");
    }
    n = recv(fd, buf, MAX_SIZE, 0);
    if (n != (ssize_t)size) {
        if (n < 0) {
            bench_die("recv (peer gone?)");
        }
        fprintf(stderr, "floor: got %zd bytes back, sent %zu\n", n, size);
        exit(1);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: floor [-r ROUNDS] [-w WARMUP] [-p] [SIZE...]\n"
            "  SIZE in 1..%d bytes; default sizes 64 128 256 512 1024 1500 "
            "2048 4096\n", MAX_SIZE);
    exit(2);
}

static int pin_option(const struct bench_args *a, void *ctx, int opt, const char *arg)
{
    (void)a;
    (void)opt;
    (void)arg;
    *(int *)ctx = 1;
    return 0;
}

int main(int argc, char **argv)
{
    static const size_t default_sizes[] = { 64, 128, 256, 512, 1024, 1500,
                                            2048, 4096 };
    static char buf[MAX_SIZE];
    struct bench_args a = {
        .prog = "floor", .usage = usage, .positional = 1,
        .rounds = 20000, .warmup = 1000,
    };
    size_t sizes[64], nsizes = 0;
    long rounds;
    struct timeval tv = { .tv_sec = RECV_TIMEOUT_S };
    int sv[2], pinned = 0, status;
    double *t;
    pid_t pid;

    for (int i = bench_parse_args(&a, argc, argv, "rw", "p", pin_option, &pinned);
         i < argc; i++) {
        long s;

        if (nsizes == sizeof(sizes) / sizeof(sizes[0])) {
            usage();
        }
        bench_opt_long(&a, 0, argv[i], "SIZE", 1, MAX_SIZE, &s);
        sizes[nsizes++] = s;
    }
    if (!nsizes) {
        memcpy(sizes, default_sizes, sizeof(default_sizes));
        nsizes = sizeof(default_sizes) / sizeof(default_sizes[0]);
    }
    rounds = a.rounds;
    t = calloc(rounds, sizeof(*t));
    if (!t) {
        bench_die("calloc");
    }

    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) {
        bench_die("socketpair");
    }
    /* A lost peer never hangs either side. */
    for (int i = 0; i < 2; i++) {
        if (setsockopt(sv[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
            bench_die("SO_RCVTIMEO");
        }
    }
    alarm(RUN_LIMIT_S);
    pid = fork();
    if (pid < 0) {
        bench_die("fork");
    }
    if (pid == 0) {
        close(sv[0]);
        if (pinned) {
            pin(1);
        }
        echo(sv[1]);
    }
    close(sv[1]);
    if (pinned) {
        pin(0);
    }

    memset(buf, 0xa5, sizeof(buf));
    for (size_t s = 0; s < nsizes; s++) {
        for (long i = 0; i < a.warmup; i++) {
            round_trip(sv[0], buf, sizes[s]);
        }
        for (long i = 0; i < rounds; i++) {
            double t0 = bench_now();

            round_trip(sv[0], buf, sizes[s]);
            t[i] = (bench_now() - t0) * 1e6;
        }
        qsort(t, rounds, sizeof(*t), bench_cmp_double);
        printf("floor,%zu,%.2f,%.2f\n", sizes[s], t[rounds / 2],
               t[(rounds * 99 + 99) / 100 - 1]);
        fflush(stdout);
    }

    send(sv[0], buf, 0, 0);             /* stop the echo side */
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status)) {
        fprintf(stderr, "floor: echo process failed\n");
        return 1;
    }
    free(t);
    return 0;
}
