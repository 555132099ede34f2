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
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE        65536
#define RECV_TIMEOUT_S  5
#define RUN_LIMIT_S     600

static void die(const char *what)
{
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void pin(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set)) {
        die("sched_setaffinity");
    }
}

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The echo side: send back every datagram; a zero-length one ends it. */
static void echo(int fd)
{
    static char buf[MAX_SIZE];

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);

        if (n < 0) {
            die("echo recv");
        }
        if (n == 0) {
            exit(0);
        }
        if (send(fd, buf, n, 0) != n) {
            die("echo send");
        }
    }
}

static void round_trip(int fd, char *buf, size_t size)
{
    ssize_t n;

    if (send(fd, buf, size, 0) != (ssize_t)size) {
        die("send");
    }
    n = recv(fd, buf, MAX_SIZE, 0);
    if (n != (ssize_t)size) {
        if (n < 0) {
            die("recv (peer gone?)");
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

int main(int argc, char **argv)
{
    static const size_t default_sizes[] = { 64, 128, 256, 512, 1024, 1500,
                                            2048, 4096 };
    static char buf[MAX_SIZE];
    size_t sizes[64], nsizes = 0;
    long rounds = 20000, warmup = 1000;
    struct timeval tv = { .tv_sec = RECV_TIMEOUT_S };
    int sv[2], opt, pinned = 0, status;
    double *t;
    pid_t pid;

    while ((opt = getopt(argc, argv, "r:w:ph")) != -1) {
        switch (opt) {
        case 'r':
            rounds = strtol(optarg, NULL, 10);
            break;
        case 'w':
            warmup = strtol(optarg, NULL, 10);
            break;
        case 'p':
            pinned = 1;
            break;
        default:
            usage();
        }
    }
    if (rounds < 1 || rounds > 10000000 || warmup < 0) {
        usage();
    }
    for (int i = optind; i < argc; i++) {
        long s = strtol(argv[i], NULL, 10);

        if (s < 1 || s > MAX_SIZE || nsizes == sizeof(sizes) / sizeof(sizes[0])) {
            usage();
        }
        sizes[nsizes++] = s;
    }
    if (!nsizes) {
        memcpy(sizes, default_sizes, sizeof(default_sizes));
        nsizes = sizeof(default_sizes) / sizeof(default_sizes[0]);
    }
    t = calloc(rounds, sizeof(*t));
    if (!t) {
        die("calloc");
    }

    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) {
        die("socketpair");
    }
    /* A lost peer never hangs either side. */
    for (int i = 0; i < 2; i++) {
        if (setsockopt(sv[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
            die("SO_RCVTIMEO");
        }
    }
    alarm(RUN_LIMIT_S);
    pid = fork();
    if (pid < 0) {
        die("fork");
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
        for (long i = 0; i < warmup; i++) {
            round_trip(sv[0], buf, sizes[s]);
        }
        for (long i = 0; i < rounds; i++) {
            double t0 = now_us();

            round_trip(sv[0], buf, sizes[s]);
            t[i] = now_us() - t0;
        }
        qsort(t, rounds, sizeof(*t), cmp_double);
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
