/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * apertnic: an aperture-mapped network interface (PCIe).
 *
 * QOM, PCI and network glue only; the device itself is apertnic_core.c.
 * Specification: docs/specs/apertnic.rst in the apertnic tree.
 */
#include "qemu/osdep.h"
#include "qemu/module.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/pcie.h"
#include "hw/pci/msix.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "net/net.h"
#include "system/dma.h"
#include "system/runstate.h"
#include "apertnic_core.h"
#include "trace.h"

#define TYPE_APERTNIC "apertnic"
OBJECT_DECLARE_SIMPLE_TYPE(ApertnicState, APERTNIC)

struct ApertnicState {
    PCIDevice parent_obj;

    NICState *nic;
    NICConf conf;
    MemoryRegion regs;
    MemoryRegion apertures;
    QEMUTimer *flush_timer;
    QEMUTimer *read_timer;
    QEMUBH *bh;
    bool bh_deferred;           /* the bh ran while the VM was stopped */
    VMChangeStateEntry *vmstate_change;

    /* properties */
    uint32_t num_endpoints;
    uint32_t num_out;
    uint32_t out_slot_shift;
    uint32_t max_in;
    uint32_t cache_entries;
    uint32_t mtu;
    uint64_t flush_delay_ns;
    uint64_t read_timeout_ns;

    ApnCore core;
};

/* ---- ops the core uses ------------------------------------------------------ */

static bool bus_master_enabled(ApertnicState *s)
{
    return pci_get_word(s->parent_obj.config + PCI_COMMAND) &
           PCI_COMMAND_MASTER;
}

static int apertnic_dma_read(void *opaque, uint64_t addr, void *buf,
                             uint64_t len)
{
    ApertnicState *s = opaque;

    if (!bus_master_enabled(s) ||
        pci_dma_read(&s->parent_obj, addr, buf, len) != MEMTX_OK) {
        trace_apertnic_dma_error("read", addr, len);
        return -1;
    }
    return 0;
}

static int apertnic_dma_write(void *opaque, uint64_t addr, const void *buf,
                              uint64_t len)
{
    ApertnicState *s = opaque;

    if (!bus_master_enabled(s) ||
        pci_dma_write(&s->parent_obj, addr, buf, len) != MEMTX_OK) {
        trace_apertnic_dma_error("write", addr, len);
        return -1;
    }
    return 0;
}

static void apertnic_send_frame(void *opaque, const uint8_t *frame, size_t len)
{
    ApertnicState *s = opaque;

    qemu_send_packet(qemu_get_queue(s->nic), frame, len);
}

static void apertnic_notify(void *opaque, unsigned vector)
{
    PCIDevice *d = PCI_DEVICE(opaque);

    /* MSI-X only: the device has no INTx pin (see the spec). */
    if (msix_enabled(d)) {
        msix_notify(d, vector);
    }
}

static void apertnic_timer_arm(void *opaque, uint64_t delay_ns)
{
    ApertnicState *s = opaque;

    timer_mod(s->flush_timer,
              qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) + delay_ns);
}

static void apertnic_timer_cancel(void *opaque)
{
    ApertnicState *s = opaque;

    timer_del(s->flush_timer);
}

static uint64_t apertnic_now_ns(void *opaque)
{
    return qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
}

/* The RX ring has buffers again: deliver what the net layer queued. */
static void apertnic_rx_ready(void *opaque)
{
    ApertnicState *s = opaque;

    qemu_flush_queued_packets(qemu_get_queue(s->nic));
}

static void apertnic_schedule(void *opaque)
{
    ApertnicState *s = opaque;

    qemu_bh_schedule(s->bh);
}

static void apertnic_read_timer_arm(void *opaque, uint64_t delay_ns)
{
    ApertnicState *s = opaque;

    timer_mod(s->read_timer,
              qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) + delay_ns);
}

static void apertnic_read_timer_cancel(void *opaque)
{
    ApertnicState *s = opaque;

    timer_del(s->read_timer);
}

static const ApnCoreOps apertnic_core_ops = {
    .dma_read = apertnic_dma_read,
    .dma_write = apertnic_dma_write,
    .send_frame = apertnic_send_frame,
    .notify = apertnic_notify,
    .timer_arm = apertnic_timer_arm,
    .timer_cancel = apertnic_timer_cancel,
    .now_ns = apertnic_now_ns,
    .rx_ready = apertnic_rx_ready,
    .schedule = apertnic_schedule,
    .read_timer_arm = apertnic_read_timer_arm,
    .read_timer_cancel = apertnic_read_timer_cancel,
};

static void apertnic_flush_timer_cb(void *opaque)
{
    ApertnicState *s = opaque;

    apn_core_flush_timer(&s->core);
}

static void apertnic_read_timer_cb(void *opaque)
{
    ApertnicState *s = opaque;

    apn_core_read_timer(&s->core);
}

/*
 * DMA-channel work: not while the VM is stopped (its memory may be on its
 * way to a migration destination); it resumes with the VM.
 */
static void apertnic_bh_cb(void *opaque)
{
    ApertnicState *s = opaque;

    if (!runstate_is_running()) {
        trace_apertnic_bh_deferred();
        s->bh_deferred = true;
        return;
    }
    apn_core_bh(&s->core);
}

static void apertnic_vm_state_change(void *opaque, bool running,
                                     RunState state)
{
    ApertnicState *s = opaque;

    if (running && s->bh_deferred) {
        s->bh_deferred = false;
        qemu_bh_schedule(s->bh);
    }
}

/* ---- MMIO ------------------------------------------------------------------------ */

static uint64_t apertnic_regs_read(void *opaque, hwaddr addr, unsigned size)
{
    ApertnicState *s = opaque;

    return apn_core_reg_read(&s->core, addr, size);
}

static void apertnic_regs_write(void *opaque, hwaddr addr, uint64_t val,
                                unsigned size)
{
    ApertnicState *s = opaque;

    apn_core_reg_write(&s->core, addr, val, size);
}

static const MemoryRegionOps apertnic_regs_ops = {
    .read = apertnic_regs_read,
    .write = apertnic_regs_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 4,
        .max_access_size = 8,
        .unaligned = false,
    },
    .impl = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
};

static uint64_t apertnic_aperture_read(void *opaque, hwaddr addr,
                                       unsigned size)
{
    ApertnicState *s = opaque;

    return apn_core_aperture_read(&s->core, addr, size);
}

static void apertnic_aperture_write(void *opaque, hwaddr addr, uint64_t val,
                                    unsigned size)
{
    ApertnicState *s = opaque;

    apn_core_aperture_write(&s->core, addr, val, size);
}

static const MemoryRegionOps apertnic_aperture_ops = {
    .read = apertnic_aperture_read,
    .write = apertnic_aperture_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 1,
        .max_access_size = 8,
    },
    .impl = {
        .min_access_size = 1,
        .max_access_size = 8,
    },
};

/* ---- network ------------------------------------------------------------------- */

static bool apertnic_can_receive(NetClientState *nc)
{
    ApertnicState *s = qemu_get_nic_opaque(nc);

    return apn_core_can_receive(&s->core);
}

static ssize_t apertnic_receive(NetClientState *nc, const uint8_t *buf,
                                size_t size)
{
    ApertnicState *s = qemu_get_nic_opaque(nc);

    /* 0: the RX ring is full; the net layer keeps the frame for later. */
    return apn_core_receive(&s->core, buf, size) ? size : 0;
}

static void apertnic_link_status_changed(NetClientState *nc)
{
    ApertnicState *s = qemu_get_nic_opaque(nc);

    trace_apertnic_link(!nc->link_down);
    apn_core_set_link(&s->core, !nc->link_down);
}

static NetClientInfo apertnic_net_info = {
    .type = NET_CLIENT_DRIVER_NIC,
    .size = sizeof(NICState),
    .can_receive = apertnic_can_receive,
    .receive = apertnic_receive,
    .link_status_changed = apertnic_link_status_changed,
};

/* ---- QOM ---------------------------------------------------------------------------- */

/* qom-get <path> counters: every device counter by its name. */
static void apertnic_get_counters(Object *obj, Visitor *v, const char *name,
                                  void *opaque, Error **errp)
{
    ApertnicState *s = APERTNIC(obj);
    bool ok;

    if (!visit_start_struct(v, name, NULL, 0, errp)) {
        return;
    }
    ok = true;
    for (unsigned i = 0; ok && i < APN_CNT__COUNT; i++) {
        uint64_t val = s->core.regs.counters[i];
        ok = visit_type_uint64(v, apn_counter_name(i), &val, errp);
    }
    if (ok) {
        visit_check_struct(v, errp);
    }
    visit_end_struct(v, NULL);
}

static void apertnic_realize(PCIDevice *pci_dev, Error **errp)
{
    ApertnicState *s = APERTNIC(pci_dev);
    DeviceState *dev = DEVICE(pci_dev);
    ApnCoreConfig cfg = {
        .num_endpoints = s->num_endpoints,
        .num_out = s->num_out,
        .out_slot_shift = s->out_slot_shift,
        .max_in = s->max_in,
        .cache_entries = s->cache_entries,
        .mtu = s->mtu,
        .flush_delay_ns = s->flush_delay_ns,
        .read_timeout_ns = s->read_timeout_ns,
    };
    const char *why;
    uint64_t aperture_size;

    qemu_macaddr_default_if_unset(&s->conf.macaddr);
    memcpy(cfg.mac, s->conf.macaddr.a, sizeof(cfg.mac));
    if (apn_core_init(&s->core, &cfg, &apertnic_core_ops, s, &why)) {
        error_setg(errp, "apertnic: %s", why);
        return;
    }

    memory_region_init_io(&s->regs, OBJECT(s), &apertnic_regs_ops, s,
                          "apertnic-regs", apn_core_regs_bar_size(&cfg));
    /* A fence or doorbell must see every store batched before it. */
    memory_region_set_flush_coalesced(&s->regs);
    pci_register_bar(pci_dev, APN_BAR_REGS, PCI_BASE_ADDRESS_SPACE_MEMORY,
                     &s->regs);

    aperture_size = apn_core_aperture_bar_size(&cfg);
    memory_region_init_io(&s->apertures, OBJECT(s), &apertnic_aperture_ops, s,
                          "apertnic-apertures", aperture_size);
    /* Under KVM, stores into apertures are batched instead of exiting. */
    memory_region_add_coalescing(&s->apertures, 0, aperture_size);
    pci_register_bar(pci_dev, APN_BAR_APERTURES,
                     PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64 |
                     PCI_BASE_ADDRESS_MEM_PREFETCH, &s->apertures);

    if (pcie_endpoint_cap_init(pci_dev, 0xa0) < 0) {
        error_setg(errp, "apertnic: cannot add the PCIe capability");
        apn_core_cleanup(&s->core);
        return;
    }
    if (msix_init_exclusive_bar(pci_dev, APN_NUM_VECTORS, APN_BAR_MSIX,
                                errp)) {
        apn_core_cleanup(&s->core);
        return;
    }
    for (unsigned i = 0; i < APN_NUM_VECTORS; i++) {
        msix_vector_use(pci_dev, i);
    }

    s->flush_timer = timer_new_ns(QEMU_CLOCK_VIRTUAL, apertnic_flush_timer_cb,
                                  s);
    s->read_timer = timer_new_ns(QEMU_CLOCK_VIRTUAL, apertnic_read_timer_cb,
                                 s);
    s->bh = qemu_bh_new_guarded(apertnic_bh_cb, s,
                                &dev->mem_reentrancy_guard);
    s->vmstate_change = qemu_add_vm_change_state_handler(
        apertnic_vm_state_change, s);
    s->nic = qemu_new_nic(&apertnic_net_info, &s->conf,
                          object_get_typename(OBJECT(s)), dev->id,
                          &dev->mem_reentrancy_guard, s);
    qemu_format_nic_info_str(qemu_get_queue(s->nic), s->conf.macaddr.a);
    apn_core_set_link(&s->core, !qemu_get_queue(s->nic)->link_down);
}

static void apertnic_exit(PCIDevice *pci_dev)
{
    ApertnicState *s = APERTNIC(pci_dev);

    timer_free(s->flush_timer);
    timer_free(s->read_timer);
    qemu_bh_delete(s->bh);
    qemu_del_vm_change_state_handler(s->vmstate_change);
    qemu_del_nic(s->nic);
    msix_unuse_all_vectors(pci_dev);
    msix_uninit_exclusive_bar(pci_dev);
    apn_core_cleanup(&s->core);
}

static void apertnic_reset_hold(Object *obj, ResetType type)
{
    ApertnicState *s = APERTNIC(obj);

    apn_core_reset(&s->core);
    /* Frames held back by a full RX ring belong to the old driver. */
    if (s->nic) {
        qemu_flush_or_purge_queued_packets(qemu_get_queue(s->nic), true);
    }
}

static int apertnic_post_load(void *opaque, int version_id)
{
    ApertnicState *s = opaque;

    apn_core_post_load(&s->core);
    return 0;
}

static bool apertnic_burst_needed(void *opaque)
{
    ApertnicState *s = opaque;

    return s->core.burst.active;
}

/* Stores gathered but not yet sent when the VM stopped. */
static const VMStateDescription apertnic_vmstate_burst = {
    .name = "apertnic/burst",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = apertnic_burst_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_BOOL(core.burst.active, ApertnicState),
        VMSTATE_UINT32(core.burst.out_index, ApertnicState),
        VMSTATE_UINT32(core.burst.start, ApertnicState),
        VMSTATE_UINT32(core.burst.len, ApertnicState),
        VMSTATE_UINT32(core.burst.entry.flags, ApertnicState),
        VMSTATE_UINT16(core.burst.entry.endpoint, ApertnicState),
        VMSTATE_UINT16(core.burst.entry.dest_host, ApertnicState),
        VMSTATE_UINT32(core.burst.entry.dest_in_index, ApertnicState),
        VMSTATE_UINT32(core.burst.entry.size, ApertnicState),
        VMSTATE_UINT32(core.burst.entry.nonce, ApertnicState),
        VMSTATE_UINT32(core.burst.entry.seq, ApertnicState),
        VMSTATE_UINT8_ARRAY(core.burst.data, ApertnicState, APN_MAX_MTU),
        VMSTATE_END_OF_LIST()
    }
};

static bool apertnic_pend_needed(void *opaque)
{
    ApertnicState *s = opaque;

    return s->core.pend.active;
}

/* Segments packed into a frame not yet sent when the VM stopped. */
static const VMStateDescription apertnic_vmstate_pend = {
    .name = "apertnic/pending-frame",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = apertnic_pend_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_BOOL(core.pend.active, ApertnicState),
        VMSTATE_UINT8(core.pend.nseg, ApertnicState),
        VMSTATE_UINT16(core.pend.dst_host, ApertnicState),
        VMSTATE_UINT8_ARRAY(core.pend.dst_mac, ApertnicState, 6),
        VMSTATE_UINT32(core.pend.len, ApertnicState),
        VMSTATE_UINT8_ARRAY(core.pend.data, ApertnicState, APN_MAX_MTU),
        VMSTATE_END_OF_LIST()
    }
};

static bool apertnic_rings_needed(void *opaque)
{
    ApertnicState *s = opaque;
    ApnCoreRegs *r = &s->core.regs;

    return r->rx_ring_lo || r->rx_ring_hi || r->rx_ring_size ||
           r->rx_tail || r->rx_head || r->tx_ring_lo || r->tx_ring_hi ||
           r->tx_ring_size || r->tx_tail || r->tx_head || r->ring_irq;
}

/* The kernel's Ethernet rings. */
static const VMStateDescription apertnic_vmstate_rings = {
    .name = "apertnic/rings",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = apertnic_rings_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(core.regs.rx_ring_lo, ApertnicState),
        VMSTATE_UINT32(core.regs.rx_ring_hi, ApertnicState),
        VMSTATE_UINT32(core.regs.rx_ring_size, ApertnicState),
        VMSTATE_UINT32(core.regs.rx_tail, ApertnicState),
        VMSTATE_UINT32(core.regs.rx_head, ApertnicState),
        VMSTATE_UINT32(core.regs.tx_ring_lo, ApertnicState),
        VMSTATE_UINT32(core.regs.tx_ring_hi, ApertnicState),
        VMSTATE_UINT32(core.regs.tx_ring_size, ApertnicState),
        VMSTATE_UINT32(core.regs.tx_tail, ApertnicState),
        VMSTATE_UINT32(core.regs.tx_head, ApertnicState),
        VMSTATE_UINT32(core.regs.ring_irq, ApertnicState),
        VMSTATE_END_OF_LIST()
    }
};

static const VMStateDescription apertnic_vmstate_dma_slot = {
    .name = "apertnic/dma-slot",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8(opcode, ApnDmaSlot),
        VMSTATE_UINT8(state, ApnDmaSlot),
        VMSTATE_INT32(read, ApnDmaSlot),
        VMSTATE_UINT32(out_index, ApnDmaSlot),
        VMSTATE_UINT32(in_index, ApnDmaSlot),
        VMSTATE_UINT32(len, ApnDmaSlot),
        VMSTATE_UINT32(remote_offset, ApnDmaSlot),
        VMSTATE_UINT32(local_offset, ApnDmaSlot),
        VMSTATE_UINT32(cookie, ApnDmaSlot),
        VMSTATE_UINT32(progress, ApnDmaSlot),
        VMSTATE_UINT32(status, ApnDmaSlot),
        VMSTATE_UINT32(bytes, ApnDmaSlot),
        VMSTATE_END_OF_LIST()
    }
};

/* One endpoint's DMA channel and READ_LANDING. */
static const VMStateDescription apertnic_vmstate_ep_dma = {
    .name = "apertnic/endpoint-dma",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(rq_lo, ApnEndpoint),
        VMSTATE_UINT32(rq_hi, ApnEndpoint),
        VMSTATE_UINT32(rq_size, ApnEndpoint),
        VMSTATE_UINT32(cq_lo, ApnEndpoint),
        VMSTATE_UINT32(cq_hi, ApnEndpoint),
        VMSTATE_UINT32(cq_size, ApnEndpoint),
        VMSTATE_UINT32(rq_tail, ApnEndpoint),
        VMSTATE_UINT32(rq_head, ApnEndpoint),
        VMSTATE_UINT32(rq_next, ApnEndpoint),
        VMSTATE_UINT32(cq_wrptr, ApnEndpoint),
        VMSTATE_UINT32(cq_rdptr, ApnEndpoint),
        VMSTATE_UINT32(read_landing, ApnEndpoint),
        VMSTATE_STRUCT_ARRAY(dma, ApnEndpoint, APN_DMA_INFLIGHT, 1,
                             apertnic_vmstate_dma_slot, ApnDmaSlot),
        VMSTATE_END_OF_LIST()
    }
};

static bool apertnic_dma_needed(void *opaque)
{
    ApertnicState *s = opaque;

    for (uint32_t i = 0; i < s->num_endpoints; i++) {
        ApnEndpoint *p = &s->core.regs.ep[i];

        if (p->rq_lo || p->rq_hi || p->rq_size || p->cq_lo || p->cq_hi ||
            p->cq_size || p->read_landing) {
            return true;
        }
    }
    return false;
}

static const VMStateDescription apertnic_vmstate_dma = {
    .name = "apertnic/dma",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = apertnic_dma_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_STRUCT_VARRAY_UINT32(core.regs.ep, ApertnicState,
                                     num_endpoints, 1,
                                     apertnic_vmstate_ep_dma, ApnEndpoint),
        VMSTATE_END_OF_LIST()
    }
};

static bool apertnic_ev_post_needed(void *opaque)
{
    ApertnicState *s = opaque;
    ApnCoreRegs *r = &s->core.regs;

    return r->ev_post_ep || r->ev_post_info || r->ev_post_data_lo ||
           r->ev_post_data_hi;
}

/* The event post staging registers (APN_REG_EV_POST_*). */
static const VMStateDescription apertnic_vmstate_ev_post = {
    .name = "apertnic/ev-post",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = apertnic_ev_post_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(core.regs.ev_post_ep, ApertnicState),
        VMSTATE_UINT32(core.regs.ev_post_info, ApertnicState),
        VMSTATE_UINT32(core.regs.ev_post_data_lo, ApertnicState),
        VMSTATE_UINT32(core.regs.ev_post_data_hi, ApertnicState),
        VMSTATE_END_OF_LIST()
    }
};

/*
 * Version 2's stream carries the first APN_CNT_TX_CLOSES counters; the ones
 * appended since (tx_closes .. ev_posts) travel here, so older streams
 * still load (their new counters start at 0).
 */
#define APN_VMSTATE_CNT_BASE   APN_CNT_TX_CLOSES
/* A counter appended after ev_posts needs a subsection of its own. */
QEMU_BUILD_BUG_ON(APN_CNT__COUNT != APN_CNT_EV_POSTS + 1);

static bool apertnic_counters_close_needed(void *opaque)
{
    ApertnicState *s = opaque;

    for (unsigned i = APN_VMSTATE_CNT_BASE; i < APN_CNT__COUNT; i++) {
        if (s->core.regs.counters[i]) {
            return true;
        }
    }
    return false;
}

static const VMStateDescription apertnic_vmstate_counters_close = {
    .name = "apertnic/counters-close",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = apertnic_counters_close_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64_SUB_ARRAY(core.regs.counters, ApertnicState,
                                 APN_VMSTATE_CNT_BASE,
                                 APN_CNT_EV_POSTS + 1 - APN_VMSTATE_CNT_BASE),
        VMSTATE_END_OF_LIST()
    }
};

static const VMStateDescription apertnic_vmstate_read = {
    .name = "apertnic/read",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8(kind, ApnRead),
        VMSTATE_UINT8(want_next, ApnRead),
        VMSTATE_UINT16(ep, ApnRead),
        VMSTATE_UINT16(host, ApnRead),
        VMSTATE_UINT32(tag, ApnRead),
        VMSTATE_UINT32(out_index, ApnRead),
        VMSTATE_UINT32(in_index, ApnRead),
        VMSTATE_UINT32(remote_offset, ApnRead),
        VMSTATE_UINT32(land_offset, ApnRead),
        VMSTATE_UINT32(len, ApnRead),
        VMSTATE_UINT32(asked, ApnRead),
        VMSTATE_UINT32(done, ApnRead),
        VMSTATE_UINT32(rq_pos, ApnRead),
        VMSTATE_UINT64(deadline, ApnRead),
        VMSTATE_END_OF_LIST()
    }
};

static bool apertnic_reads_needed(void *opaque)
{
    ApertnicState *s = opaque;

    for (unsigned i = 0; i < APN_MAX_READS; i++) {
        if (s->core.reads[i].kind != APN_READ_FREE) {
            return true;
        }
    }
    return false;
}

/*
 * Remote reads still waiting for data: they go on waiting on the
 * destination (an answer that reaches it completes them) until their
 * deadline on the migrated virtual clock.
 */
static const VMStateDescription apertnic_vmstate_reads = {
    .name = "apertnic/reads",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = apertnic_reads_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(core.read_gen, ApertnicState),
        VMSTATE_STRUCT_ARRAY(core.reads, ApertnicState, APN_MAX_READS, 1,
                             apertnic_vmstate_read, ApnRead),
        VMSTATE_END_OF_LIST()
    }
};

static const VMStateDescription apertnic_vmstate_cmd = {
    .name = "apertnic/cmd",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(status, ApnCmdRegs),
        VMSTATE_UINT32(out_index, ApnCmdRegs),
        VMSTATE_UINT32(out_dest_host, ApnCmdRegs),
        VMSTATE_UINT32(out_dest_in_index, ApnCmdRegs),
        VMSTATE_UINT32(out_nonce, ApnCmdRegs),
        VMSTATE_UINT32(in_index, ApnCmdRegs),
        VMSTATE_UINT32(in_nonce, ApnCmdRegs),
        VMSTATE_UINT32(in_narrow_start, ApnCmdRegs),
        VMSTATE_UINT32(in_narrow_len, ApnCmdRegs),
        VMSTATE_UINT32(msg_dest_host, ApnCmdRegs),
        VMSTATE_UINT32(msg_dest_port, ApnCmdRegs),
        VMSTATE_UINT32(msg_type, ApnCmdRegs),
        VMSTATE_UINT32(msg_in_index, ApnCmdRegs),
        VMSTATE_UINT32(msg_nonce, ApnCmdRegs),
        VMSTATE_UINT32(msg_info, ApnCmdRegs),
        VMSTATE_END_OF_LIST()
    }
};

/* One endpoint: registers, queue pointers, ARM, overflow state, commands. */
static const VMStateDescription apertnic_vmstate_endpoint = {
    .name = "apertnic/endpoint",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(ctrl, ApnEndpoint),
        VMSTATE_UINT32(port, ApnEndpoint),
        VMSTATE_UINT32(evq_lo, ApnEndpoint),
        VMSTATE_UINT32(evq_hi, ApnEndpoint),
        VMSTATE_UINT32(evq_size, ApnEndpoint),
        VMSTATE_UINT32(varq_lo, ApnEndpoint),
        VMSTATE_UINT32(varq_hi, ApnEndpoint),
        VMSTATE_UINT32(varq_size, ApnEndpoint),
        VMSTATE_UINT32(evq_wrptr, ApnEndpoint),
        VMSTATE_UINT32(evq_rdptr, ApnEndpoint),
        VMSTATE_UINT32(varq_wrptr, ApnEndpoint),
        VMSTATE_UINT32(varq_rdptr, ApnEndpoint),
        VMSTATE_UINT32(evq_lost, ApnEndpoint),
        VMSTATE_UINT32(varq_lost, ApnEndpoint),
        VMSTATE_BOOL(armed, ApnEndpoint),
        VMSTATE_BOOL(evq_overflowing, ApnEndpoint),
        VMSTATE_BOOL(varq_overflowing, ApnEndpoint),
        VMSTATE_STRUCT(cmd, ApnEndpoint, 1, apertnic_vmstate_cmd, ApnCmdRegs),
        VMSTATE_END_OF_LIST()
    }
};

/*
 * The mapping cache is not migrated: it refills from the tables in memory.
 * Neither is the port map: post_load rebuilds it from the endpoints. The
 * endpoint array's length is the `endpoints` property, the same on both
 * sides.
 */
static const VMStateDescription apertnic_vmstate = {
    .name = "apertnic",
    .version_id = 2,
    .minimum_version_id = 2,
    .post_load = apertnic_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_PCI_DEVICE(parent_obj, ApertnicState),
        VMSTATE_MSIX(parent_obj, ApertnicState),
        VMSTATE_UINT32(core.regs.ctrl, ApertnicState),
        VMSTATE_UINT32(core.regs.status, ApertnicState),
        VMSTATE_UINT32(core.regs.host_id, ApertnicState),
        VMSTATE_UINT32(core.regs.in_table_lo, ApertnicState),
        VMSTATE_UINT32(core.regs.in_table_hi, ApertnicState),
        VMSTATE_UINT32(core.regs.in_table_count, ApertnicState),
        VMSTATE_UINT32(core.regs.out_table_lo, ApertnicState),
        VMSTATE_UINT32(core.regs.out_table_hi, ApertnicState),
        VMSTATE_UINT32(core.regs.out_table_count, ApertnicState),
        VMSTATE_UINT32(core.regs.osq_base_lo, ApertnicState),
        VMSTATE_UINT32(core.regs.osq_base_hi, ApertnicState),
        VMSTATE_UINT32(core.regs.osq_size, ApertnicState),
        VMSTATE_UINT32(core.regs.osq_wrptr, ApertnicState),
        VMSTATE_UINT32(core.regs.osq_rdptr, ApertnicState),
        VMSTATE_UINT64_ARRAY(core.regs.host_mac, ApertnicState,
                             APN_HOST_MAC_ENTRIES),
        VMSTATE_UINT64_SUB_ARRAY(core.regs.counters, ApertnicState, 0,
                                 APN_VMSTATE_CNT_BASE),
        VMSTATE_UINT32(core.regs.ip_addr, ApertnicState),
        VMSTATE_UINT32_ARRAY(core.regs.host_ip, ApertnicState,
                             APN_HOST_MAC_ENTRIES),
        VMSTATE_UINT32(core.regs.cmd_ep, ApertnicState),
        VMSTATE_STRUCT(core.regs.cmd, ApertnicState, 1, apertnic_vmstate_cmd,
                       ApnCmdRegs),
        VMSTATE_STRUCT_VARRAY_UINT32(core.regs.ep, ApertnicState,
                                     num_endpoints, 1,
                                     apertnic_vmstate_endpoint, ApnEndpoint),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &apertnic_vmstate_burst,
        &apertnic_vmstate_pend,
        &apertnic_vmstate_rings,
        &apertnic_vmstate_dma,
        &apertnic_vmstate_reads,
        &apertnic_vmstate_ev_post,
        &apertnic_vmstate_counters_close,
        NULL
    }
};

static const Property apertnic_properties[] = {
    DEFINE_NIC_PROPERTIES(ApertnicState, conf),
    DEFINE_PROP_UINT32("endpoints", ApertnicState, num_endpoints, 64),
    DEFINE_PROP_UINT32("out-apertures", ApertnicState, num_out, 256),
    DEFINE_PROP_UINT32("out-slot-shift", ApertnicState, out_slot_shift, 16),
    DEFINE_PROP_UINT32("max-in-apertures", ApertnicState, max_in, 65536),
    DEFINE_PROP_UINT32("cache-entries", ApertnicState, cache_entries, 64),
    DEFINE_PROP_UINT32("mtu", ApertnicState, mtu, 1500),
    DEFINE_PROP_UINT64("x-flush-delay-ns", ApertnicState, flush_delay_ns,
                       50000),
    DEFINE_PROP_UINT64("x-read-timeout-ns", ApertnicState, read_timeout_ns,
                       NANOSECONDS_PER_SECOND),
};

static void apertnic_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    k->realize = apertnic_realize;
    k->exit = apertnic_exit;
    k->vendor_id = APN_PCI_VENDOR_ID;
    k->device_id = APN_PCI_DEVICE_ID;
    k->revision = APN_PCI_REVISION;
    k->class_id = APN_PCI_CLASS;

    rc->phases.hold = apertnic_reset_hold;

    dc->desc = "Aperture-mapped network interface";
    dc->vmsd = &apertnic_vmstate;
    device_class_set_props(dc, apertnic_properties);
    set_bit(DEVICE_CATEGORY_NETWORK, dc->categories);

    object_class_property_add(klass, "counters", "ApertnicCounters",
                              apertnic_get_counters, NULL, NULL, NULL);
}

static const TypeInfo apertnic_info = {
    .name = TYPE_APERTNIC,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(ApertnicState),
    .class_init = apertnic_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { }
    },
};

static void apertnic_register_types(void)
{
    type_register_static(&apertnic_info);
}

type_init(apertnic_register_types)
