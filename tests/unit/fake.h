/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A fake machine for the apertnic core: guest memory is one malloc'ed array
 * at guest address 0, frames sent are recorded, interrupts and the flush
 * timer are recorded. Shared by the unit tests and the receive fuzzer.
 */
#ifndef APN_TEST_FAKE_H
#define APN_TEST_FAKE_H

#include "qemu/osdep.h"
#include "apertnic_core.h"

#define FAKE_MAX_NOTIFY 256

typedef struct FakeFrame {
    uint8_t *data;
    size_t len;
} FakeFrame;

typedef struct Fake Fake;

struct Fake {
    uint8_t *mem;
    uint64_t mem_size;

    /* DMA calls, successful or not */
    unsigned dma_reads, dma_writes;
    unsigned dma_read_fails, dma_write_fails;
    /* Optional oracle: called for every DMA write inside memory. */
    void (*on_write)(Fake *f, uint64_t addr, uint64_t len);

    FakeFrame *frames;
    unsigned nframes, frames_cap;

    unsigned notify_vec[FAKE_MAX_NOTIFY];
    unsigned nnotify;

    bool timer_armed;
    unsigned timer_arms, timer_cancels;
    uint64_t timer_delay_ns;
    uint64_t now_ns;        /* the fake clock; tests advance it by hand */
};

extern const ApnCoreOps fake_ops;

void fake_init(Fake *f, uint64_t mem_size);
void fake_destroy(Fake *f);
void fake_clear_frames(Fake *f);

#endif /* APN_TEST_FAKE_H */
