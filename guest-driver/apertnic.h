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
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "apertnic_hw.h"

#define APN_DRV_NAME		"apertnic"
#define APN_OSQ_EVENTS		256
#define APN_NUM_PORTS		65536
/* Connection messages the IRQ handler hands to process context (power of two). */
#define APN_CM_RING		256
#define APN_CM_BACKLOG		16	/* = APN_ACCEPT_BACKLOG (uapi) */

struct apn_file;
struct apn_mr;
struct apn_tunnel;

/*
 * The user-space tunnel of apnN's traffic (apertnic_tunnel.c, seed 002): at
 * most one per NIC. active is published and cleared under the TX queue's
 * xmit lock (and read by poll() under RCU); lock serialises attach, detach,
 * kick and the watchdog.
 */
#define APN_TUN_NUM_STATS	15
struct apn_tunnel_dev {
	struct mutex lock;
	struct apn_tunnel __rcu *active;
	atomic64_t stats[APN_TUN_NUM_STATS];	/* enum apn_tun_stat */
};

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

/* A connection message handed from the IRQ handler to cm_work. */
struct apn_cm_msg {
	struct apn_event ev;
	u32 osq_pos;			/* its position in the OS queue (free running) */
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
	 * Kernel connection management (apertnic_cm.c): the IRQ handler cannot
	 * sleep, so it queues untrusted endpoints' connection messages here and
	 * cm_work acts on them under ->lock.
	 */
	spinlock_t cm_ring_lock;
	struct apn_cm_msg cm_ring[APN_CM_RING];
	u32 cm_head, cm_tail;		/* free running, under cm_ring_lock */
	/*
	 * Per endpoint, under lock: the OS queue position from which its
	 * messages are its current owner's. Messages queued for a previous
	 * owner of a reused endpoint sit before it and are dropped.
	 */
	u32 *cm_ep_from;
	struct work_struct cm_work;
	atomic_long_t cm_dropped;	/* messages lost because the ring was full */

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
	struct apn_tunnel_dev tun;
};

/* One of an endpoint's queues: control block + entries, coherent DMA memory. */
struct apn_queue {
	struct apn_queue_ctrl *ctrl;	/* NULL: not allocated */
	dma_addr_t dma;
	size_t bytes;			/* allocated (page rounded): the mmap limit */
	u32 size;			/* events (EVQ, CQ), bytes (VARQ) or requests (RQ) */
};

/* A connection message's sender and the aperture it offers (kernel CM). */
struct apn_cm_peer {
	u16 host;
	u16 port;
	u32 in_index;
	u32 nonce;
};

/* An APN_IOC_ACCEPT done, remembered to answer a repeated CONNECT again. */
struct apn_cm_accepted {
	struct apn_cm_peer peer;
	u32 in_index;			/* ours, as offered in the ACCEPT */
	u32 nonce;			/* its nonce then: a new aperture there is not offered */
};

/* Kernel connection management state of an untrusted endpoint's file. */
struct apn_cm_file {
	struct apn_cm_peer backlog[APN_CM_BACKLOG];	/* CONNECTs held, oldest first */
	u32 nbacklog;
	struct apn_cm_accepted accepted[APN_CM_BACKLOG];	/* ring, newest overwrites */
	u32 naccepted;			/* ever, free running */
	struct list_head pending;	/* struct apn_cm_pending: APN_IOC_CONNECTs, oldest first */
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
	struct apn_cm_file cm;		/* untrusted endpoints only */
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

/* Kernel connection management (apertnic_cm.c) */
void apn_cm_init(struct apn_dev *apn);
void apn_cm_queue(struct apn_dev *apn, const struct apn_event *ev, u32 osq_pos);
void apn_cm_file_init(struct apn_file *f);
void apn_cm_file_release(struct apn_file *f);
void apn_cm_out_gone(struct apn_file *f, u32 out_index);
void apn_out_close_all(struct apn_file *f);
int apn_cm_ioc_connect(struct apn_file *f, void __user *uarg);
int apn_cm_ioc_accept(struct apn_file *f, void __user *uarg);

int apn_netdev_probe(struct apn_dev *apn, int nvecs);
void apn_netdev_remove(struct apn_dev *apn);
void apn_netdev_link_event(struct apn_dev *apn, u32 status);
/* For the tunnel: the TX ring, with the queue's xmit lock held (apertnic_netdev.c). */
netdev_tx_t apn_netdev_xmit_direct(struct sk_buff *skb, struct net_device *ndev, bool more);
void apn_netdev_tx_doorbell(struct net_device *ndev);
bool apn_netdev_tx_ready(struct net_device *ndev);

/* User-space tunnel (apertnic_tunnel.c) */
void apn_tunnel_init(struct apn_dev *apn);
long apn_tunnel_ioctl(struct apn_file *f, unsigned int cmd, void __user *uarg);
bool apn_tunnel_mmap_offset(unsigned long pgoff);
int apn_tunnel_mmap(struct apn_file *f, struct vm_area_struct *vma);
bool apn_tunnel_pending(struct apn_file *f);
void apn_tunnel_release(struct apn_file *f);
void apn_tunnel_shutdown(struct apn_dev *apn);
bool apn_tunnel_xmit(struct apn_dev *apn, struct sk_buff *skb, netdev_tx_t *ret);
unsigned int apn_tunnel_stat_count(void);
void apn_tunnel_stat_strings(u8 **data);
void apn_tunnel_stat_values(struct apn_dev *apn, u64 *data);
extern const struct attribute_group apn_tunnel_attr_group;

static inline u64 apn_read_counter(struct apn_dev *apn, unsigned int id)
{
	return readq(apn->regs + APN_COUNTER_OFFSET(id));
}

#endif /* APERTNIC_PRIV_H */
