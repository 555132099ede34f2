/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fake ApnCoreOps for host builds of the apertnic core; see fake.h.
 */
#include "qemu/osdep.h"
#include "fake.h"

static bool fake_in_mem(Fake *f, uint64_t addr, uint64_t len)
{
    return addr <= f->mem_size && len <= f->mem_size - addr;
}

static int fake_dma_read(void *opaque, uint64_t addr, void *buf, uint64_t len)
{
    Fake *f = opaque;

    f->dma_reads++;
    if (!fake_in_mem(f, addr, len)) {
        f->dma_read_fails++;
        return -1;
    }
    memcpy(buf, f->mem + addr, len);
    return 0;
}

static int fake_dma_write(void *opaque, uint64_t addr, const void *buf,
                          uint64_t len)
{
    Fake *f = opaque;

    f->dma_writes++;
    if (!fake_in_mem(f, addr, len)) {
        f->dma_write_fails++;
        return -1;
    }
    if (f->on_write) {
        f->on_write(f, addr, len);
    }
    memcpy(f->mem + addr, buf, len);
    return 0;
}

static void fake_send_frame(void *opaque, const uint8_t *frame, size_t len)
{
    Fake *f = opaque;
    FakeFrame *fr;

    if (f->nframes == f->frames_cap) {
        f->frames_cap = f->frames_cap ? 2 * f->frames_cap : 16;
        f->frames = realloc(f->frames, f->frames_cap * sizeof(*f->frames));
        if (!f->frames) {
            abort();
        }
    }
    fr = &f->frames[f->nframes++];
    fr->len = len;
    fr->data = malloc(len ? len : 1);
    if (!fr->data) {
        abort();
    }
    memcpy(fr->data, frame, len);
}

static void fake_notify(void *opaque, unsigned vector)
{
    Fake *f = opaque;

    if (f->nnotify < FAKE_MAX_NOTIFY) {
        f->notify_vec[f->nnotify] = vector;
    }
    f->nnotify++;
}

static void fake_timer_arm(void *opaque, uint64_t delay_ns)
{
    Fake *f = opaque;

    f->timer_armed = true;
    f->timer_arms++;
    f->timer_delay_ns = delay_ns;
}

static uint64_t fake_now_ns(void *opaque)
{
    Fake *f = opaque;

    return f->now_ns;
}

static void fake_timer_cancel(void *opaque)
{
    Fake *f = opaque;

    f->timer_armed = false;
    f->timer_cancels++;
}

const ApnCoreOps fake_ops = {
    .dma_read = fake_dma_read,
    .dma_write = fake_dma_write,
    .send_frame = fake_send_frame,
    .notify = fake_notify,
    .timer_arm = fake_timer_arm,
    .timer_cancel = fake_timer_cancel,
    .now_ns = fake_now_ns,
};

void fake_init(Fake *f, uint64_t mem_size)
{
    memset(f, 0, sizeof(*f));
    f->mem_size = mem_size;
    f->mem = calloc(1, mem_size);
    if (!f->mem) {
        abort();
    }
}

void fake_clear_frames(Fake *f)
{
    for (unsigned i = 0; i < f->nframes; i++) {
        free(f->frames[i].data);
    }
    f->nframes = 0;
}

void fake_destroy(Fake *f)
{
    fake_clear_frames(f);
    free(f->frames);
    free(f->mem);
    memset(f, 0, sizeof(*f));
}
