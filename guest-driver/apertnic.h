/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * apertnic driver internals shared by the PCI and character device halves.
 */
#ifndef APERTNIC_PRIV_H
#define APERTNIC_PRIV_H

#include <linux/completion.h>
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/pci.h>
#include <linux/wait.h>
#include <linux/xarray.h>

#include "apertnic_hw.h"

#define APN_DRV_NAME		"apertnic"
#define APN_OSQ_EVENTS		256
#define APN_NUM_PORTS		65536

struct apn_file;
struct apn_mr;

/* An incoming table entry's software state; owner NULL means free. */
struct apn_in_slot {
	struct apn_file *owner;
	struct apn_mr *mr;
};

/* An outgoing table entry (and BAR2 slot); owner NULL means free. */
struct apn_out_slot {
	struct apn_file *owner;
	u32 size;
};

/*
 * One NIC. Reference counted because open files may outlive the PCI device:
 * after remove() they see ->dead and fail with -ENODEV, but still release.
 */
struct apn_dev {
	struct kref kref;
	struct pci_dev *pdev;
	int id;
	char name[16];

	void __iomem *regs;
	resource_size_t regs_phys;	/* BAR0: user pages are mapped from here */
	resource_size_t ap_phys;	/* BAR2: outgoing aperture slots */

	u32 spec_version;
	u32 mtu;
	u8 mac[6];
	u16 host_id;
	u32 ip;				/* APN_REG_IP_ADDR as last written */
	u32 num_endpoints;
	u32 num_in;
	u32 num_out;
	u32 out_slot_shift;

	struct apn_in_entry *in_table;
	dma_addr_t in_table_dma;
	struct apn_out_entry *out_table;
	dma_addr_t out_table_dma;

	struct apn_queue_ctrl *osq_ctrl;
	struct apn_event *osq_events;	/* follow the control block */
	dma_addr_t osq_dma;
	u32 osq_rdptr;			/* touched only by the IRQ handler */
	struct completion irq_test;

	/*
	 * One per endpoint index, for the device's lifetime: the IRQ handler
	 * wakes them without taking the lock or knowing which file (if any)
	 * owns the endpoint now.
	 */
	wait_queue_head_t *ep_wq;
	atomic_long_t no_port_events;	/* APN_EV_NO_PORT seen */
	atomic_long_t overflow_events;	/* APN_EV_OVERFLOW seen */

	/*
	 * Serialises the tables, the slot arrays, the endpoint bitmap, the file
	 * list and every file's state. Never held while touching user memory:
	 * a fault on one of our own mappings takes it.
	 */
	struct mutex lock;
	bool dead;			/* device removed */
	struct list_head files;
	unsigned long *endpoints;	/* bitmap, num_endpoints bits */
	unsigned long *ports;		/* bitmap, APN_NUM_PORTS bits: bound UDP ports */
	u32 next_port;			/* where the ephemeral port search starts */
	struct apn_in_slot *in_slots;
	struct apn_out_slot *out_slots;

	struct miscdevice misc;

	/* apnN (apertnic_netdev.c); NULL until registered and from remove() on. */
	struct net_device *netdev;
};

/* One of an endpoint's queues: control block + entries, coherent DMA memory. */
struct apn_queue {
	struct apn_queue_ctrl *ctrl;	/* NULL: not allocated */
	dma_addr_t dma;
	size_t bytes;			/* allocated (page rounded): the mmap limit */
	u32 size;			/* events (EVQ, CQ), bytes (VARQ) or requests (RQ) */
};

/* State of one open /dev/apertnicN, protected by apn_dev.lock. */
struct apn_file {
	struct apn_dev *apn;
	struct list_head node;		/* in apn_dev.files */
	struct address_space *mapping;	/* for revoking our mappings */
	int endpoint;			/* -1 until APN_IOC_CREATE_ENDPOINT */
	u16 port;
	bool trusted;
	struct apn_queue evq;
	struct apn_queue varq;
	struct apn_queue rq;		/* DMA requests (ctrl NULL: no DMA channel) */
	struct apn_queue cq;		/* their completions */
	struct mm_struct *mm;		/* charged for the queues, NULL if none */
	unsigned long charged;		/* pages charged to mm->pinned_vm */
	struct xarray mrs;		/* mr_id -> struct apn_mr */
};

/* A registered (pinned and DMA-mapped) user memory region. */
struct apn_mr {
	u32 id;
	u32 users;			/* incoming apertures on it */
	u64 len;
	unsigned long npages;
	struct page **pages;
	__le64 *page_list;		/* what the device reads */
	dma_addr_t page_list_dma;
	struct mm_struct *mm;		/* charged in pinned_vm */
};

extern const struct file_operations apn_fops;

void apn_dev_put(struct apn_dev *apn);
void apn_set_host_id(struct apn_dev *apn, u16 host_id);
void apn_revoke_files(struct apn_dev *apn);

int apn_netdev_probe(struct apn_dev *apn, int nvecs);
void apn_netdev_remove(struct apn_dev *apn);
void apn_netdev_link_event(struct apn_dev *apn, u32 status);

static inline u64 apn_read_counter(struct apn_dev *apn, unsigned int id)
{
	return readq(apn->regs + APN_COUNTER_OFFSET(id));
}

#endif /* APERTNIC_PRIV_H */
