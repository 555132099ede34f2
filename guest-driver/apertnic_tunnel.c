// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apertnic: user-space tunneled access for the kernel's own traffic (seed 002).
 *
 * A process that owns an endpoint attaches (APN_IOC_TUNNEL_ATTACH) and from
 * then on the frames apnN's stack sends are copied into the to-user ring
 * instead of the device's TX ring. The process hands frames back through the
 * to-kernel ring and APN_IOC_TUNNEL_KICK: marked APN_TUN_F_WIRE they go out
 * through the TX ring, otherwise they are received by the stack on apnN.
 * Frames from the network keep arriving through the RX ring.
 *
 * The kernel never depends on the process: closing the file, DETACH, a bad
 * value in the rings, or no KICK for watchdog_ms puts apnN back on direct
 * access, and the frames still waiting in the to-user ring go out directly.
 *
 * Locking: tun.lock (a mutex) serialises attach, detach, kick and the
 * watchdog. tun.active is published and cleared with the TX queue's xmit lock
 * held, so ndo_start_xmit (softirq, under that lock) either sees a live
 * tunnel for its whole run or none; poll() reads it under RCU, so a tunnel is
 * freed only after a grace period. The ring memory is reference counted: each
 * mapping holds it, so a process may keep (stale) mappings after a fallback.
 * The kernel keeps its own copy of the counters it owns (to-user head,
 * to-kernel tail) and validates every value the process writes.
 */

#include <linux/etherdevice.h>
#include <linux/ethtool.h>
#include <linux/if_vlan.h>
#include <linux/kref.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/netdevice.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/sysfs.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "apertnic.h"
#include "uapi/apertnic.h"

#define APN_TUN_TO_USER_PGOFF	((unsigned long)(APN_MMAP_TUN_TO_USER >> PAGE_SHIFT))
#define APN_TUN_TO_KERNEL_PGOFF	((unsigned long)(APN_MMAP_TUN_TO_KERNEL >> PAGE_SHIFT))
#define APN_TUN_END_PGOFF	((unsigned long)((APN_MMAP_TUN_TO_KERNEL + (1ull << 28)) >> PAGE_SHIFT))

static_assert(sizeof(struct apn_tun_ring) == 64);
static_assert(sizeof(struct apn_tun_slot) == 8);

/* Counters, in sysfs (tunnel/NAME) and in ethtool -S (tunnel_NAME). */
enum apn_tun_stat {
	APN_TUN_ATTACHES,		/* APN_IOC_TUNNEL_ATTACH done */
	APN_TUN_TO_USER,		/* stack frames put in the to-user ring */
	APN_TUN_TO_USER_FULL,		/* times that ring filled (queue stopped) */
	APN_TUN_TO_USER_DROPPED,	/* too long, or the process's tail was bad */
	APN_TUN_TO_STACK,		/* to-kernel frames received by the stack */
	APN_TUN_TO_WIRE,		/* to-kernel frames sent (APN_TUN_F_WIRE) */
	APN_TUN_FROM_USER_DROPPED,	/* to-kernel frames lost: too long, no memory, apnN down */
	APN_TUN_KICKS,			/* APN_IOC_TUNNEL_KICK calls */
	APN_TUN_FALLBACK_SENT,		/* to-user frames sent directly at a fallback */
	APN_TUN_FALLBACK_DROPPED,	/* frames left in the rings at a fallback, lost */
	APN_TUN_FALLBACK_RELEASE,	/* fallbacks: the owner's file was released */
	APN_TUN_FALLBACK_DETACH,	/* fallbacks: APN_IOC_TUNNEL_DETACH */
	APN_TUN_FALLBACK_WATCHDOG,	/* fallbacks: no KICK for watchdog_ms */
	APN_TUN_FALLBACK_ERROR,		/* fallbacks: a bad value in the rings */
	APN_TUN_FALLBACK_REMOVE,	/* fallbacks: apnN went away */
	APN_TUN__COUNT
};

static_assert(APN_TUN__COUNT == APN_TUN_NUM_STATS);

/* Both rings (vmalloc_user: zeroed, mappable), shared with the mappings. */
struct apn_tun_mem {
	struct kref ref;
	void *ring[2];			/* to-user, to-kernel */
	size_t bytes;			/* each, page aligned */
};

struct apn_tunnel {
	struct apn_dev *apn;
	struct apn_file *owner;
	struct net_device *ndev;
	struct apn_tun_mem *mem;
	struct apn_tun_ring *to_user;
	struct apn_tun_ring *to_kernel;
	u32 slots;
	u32 slot_bytes;
	u32 max_frame;			/* Ethernet header included */
	u32 tu_head;			/* to-user frames produced (xmit lock) */
	u32 tk_tail;			/* to-kernel frames consumed (tun.lock) */
	int endpoint;			/* whose pollers xmit wakes */
	pid_t pid;
	u32 watchdog_ms;
	unsigned long timeout;		/* watchdog_ms in jiffies */
	unsigned long last_kick;	/* jiffies */
	bool broken;			/* xmit saw a bad value: detach at the next chance */
	struct delayed_work watchdog;
};

static void apn_tun_count(struct apn_dev *apn, enum apn_tun_stat id, u64 n)
{
	atomic64_add(n, &apn->tun.stats[id]);
}

static struct apn_tun_slot *apn_tun_slot(const struct apn_tunnel *t, struct apn_tun_ring *r,
					 u32 counter)
{
	return (void *)((u8 *)(r + 1) + (size_t)(counter & (t->slots - 1)) * t->slot_bytes);
}

void apn_tunnel_init(struct apn_dev *apn)
{
	unsigned int i;

	mutex_init(&apn->tun.lock);
	RCU_INIT_POINTER(apn->tun.active, NULL);
	for (i = 0; i < APN_TUN_NUM_STATS; i++)
		atomic64_set(&apn->tun.stats[i], 0);
}

/* ---- ring memory -------------------------------------------------------------- */

static void apn_tun_mem_free(struct kref *ref)
{
	struct apn_tun_mem *mem = container_of(ref, struct apn_tun_mem, ref);

	vfree(mem->ring[0]);
	vfree(mem->ring[1]);
	kfree(mem);
}

static struct apn_tun_mem *apn_tun_mem_alloc(u32 slots, u32 slot_bytes)
{
	struct apn_tun_mem *mem = kzalloc(sizeof(*mem), GFP_KERNEL);
	int i;

	if (!mem)
		return NULL;
	kref_init(&mem->ref);
	mem->bytes = PAGE_ALIGN(sizeof(struct apn_tun_ring) + (size_t)slots * slot_bytes);
	for (i = 0; i < 2; i++) {
		struct apn_tun_ring *r = vmalloc_user(mem->bytes);

		if (!r) {
			kref_put(&mem->ref, apn_tun_mem_free);
			return NULL;
		}
		r->slots = slots;
		r->slot_bytes = slot_bytes;
		mem->ring[i] = r;
	}
	return mem;
}

static void apn_tun_vm_open(struct vm_area_struct *vma)
{
	struct apn_tun_mem *mem = vma->vm_private_data;

	kref_get(&mem->ref);
}

static void apn_tun_vm_close(struct vm_area_struct *vma)
{
	struct apn_tun_mem *mem = vma->vm_private_data;

	kref_put(&mem->ref, apn_tun_mem_free);
}

/* No fault handler: once zapped (device removal) the pages never come back. */
static const struct vm_operations_struct apn_tun_vm_ops = {
	.open = apn_tun_vm_open,
	.close = apn_tun_vm_close,
};

bool apn_tunnel_mmap_offset(unsigned long pgoff)
{
	return pgoff >= APN_TUN_TO_USER_PGOFF && pgoff < APN_TUN_END_PGOFF;
}

/* Maps (part of) one ring of the tunnel this file owns. */
int apn_tunnel_mmap(struct apn_file *f, struct vm_area_struct *vma)
{
	struct apn_tunnel_dev *tun = &f->apn->tun;
	bool to_kernel = vma->vm_pgoff >= APN_TUN_TO_KERNEL_PGOFF;
	unsigned long first = vma->vm_pgoff -
			      (to_kernel ? APN_TUN_TO_KERNEL_PGOFF : APN_TUN_TO_USER_PGOFF);
	struct apn_tunnel *t;
	unsigned long pages;
	int ret = -EINVAL;

	mutex_lock(&tun->lock);
	t = rcu_dereference_protected(tun->active, lockdep_is_held(&tun->lock));
	if (t && t->owner == f) {
		pages = t->mem->bytes >> PAGE_SHIFT;
		if (first < pages && vma_pages(vma) <= pages - first)
			ret = remap_vmalloc_range(vma, t->mem->ring[to_kernel], first);
		if (!ret) {
			kref_get(&t->mem->ref);
			vma->vm_private_data = t->mem;
			vma->vm_ops = &apn_tun_vm_ops;
		}
	}
	mutex_unlock(&tun->lock);
	return ret;
}

/* ---- the stack's frames: to the process ------------------------------------------ */

/* Frames wait in the to-user ring for f's process (poll() reports EPOLLIN). */
bool apn_tunnel_pending(struct apn_file *f)
{
	struct apn_tunnel *t;
	bool pending = false;

	rcu_read_lock();
	t = rcu_dereference(f->apn->tun.active);
	if (t && t->owner == f)
		pending = READ_ONCE(t->tu_head) != READ_ONCE(t->to_user->tail);
	rcu_read_unlock();
	return pending;
}

/*
 * ndo_start_xmit while attached (xmit lock held, BH off): copies the frame into
 * the to-user ring. Returns false if the tunnel went away meanwhile (the caller
 * sends directly), else true with *ret for the stack. The queue stops while
 * the ring is full; the process's KICK wakes it.
 */
bool apn_tunnel_xmit(struct apn_dev *apn, struct sk_buff *skb, netdev_tx_t *ret)
{
	struct apn_tunnel *t = rcu_dereference_bh(apn->tun.active);
	struct apn_tun_slot *slot;
	struct wait_queue_head *wq;
	struct net_device *ndev;
	u32 head, tail;

	if (!t)
		return false;
	ndev = t->ndev;
	*ret = NETDEV_TX_OK;
	head = t->tu_head;
	/* Pairs with the process's release of tail: it is done with those slots. */
	tail = smp_load_acquire(&t->to_user->tail);
	if (unlikely(head - tail > t->slots || skb->len > t->max_frame)) {
		/* A bad tail: the next KICK or the watchdog detaches. */
		if (head - tail > t->slots)
			WRITE_ONCE(t->broken, true);
		apn_tun_count(apn, APN_TUN_TO_USER_DROPPED, 1);
		dev_kfree_skb_any(skb);
		return true;
	}
	if (unlikely(head - tail == t->slots)) {
		/* The TX ring's cleaner woke the queue; ours is still full. */
		netif_stop_queue(ndev);
		/* Pairs with the smp_mb() in KICK: it sees the stop or we see its room. */
		smp_mb();
		/* Acquire: as above, the process is done with what it released. */
		tail = smp_load_acquire(&t->to_user->tail);
		if (head - tail >= t->slots) {
			*ret = NETDEV_TX_BUSY;
			return true;
		}
		netif_start_queue(ndev);
	}

	slot = apn_tun_slot(t, t->to_user, head);
	skb_copy_bits(skb, 0, slot + 1, skb->len);
	slot->len = skb->len;
	slot->flags = 0;
	slot->reserved = 0;
	WRITE_ONCE(t->tu_head, head + 1);
	/* The slot is written before the process can see it. */
	smp_store_release(&t->to_user->head, head + 1);
	apn_tun_count(apn, APN_TUN_TO_USER, 1);
	dev_consume_skb_any(skb);

	if (head + 1 - tail == t->slots) {
		netif_stop_queue(ndev);
		apn_tun_count(apn, APN_TUN_TO_USER_FULL, 1);
		/* Pairs with the smp_mb() in KICK, as above. */
		smp_mb();
		/* Acquire, as above. */
		tail = smp_load_acquire(&t->to_user->tail);
		if (head + 1 - tail < t->slots)
			netif_start_queue(ndev);
	}
	/* wq_has_sleeper() orders head before the look at the queue. */
	wq = &apn->ep_wq[t->endpoint];
	if (wq_has_sleeper(wq))
		wake_up_interruptible(wq);
	return true;
}

/* ---- fallback --------------------------------------------------------------------- */

/*
 * Back to direct access (tun.lock held): unpublishes the tunnel, sends what
 * the process had not taken from the to-user ring straight to the TX ring
 * (best effort: what does not fit is dropped and counted), and wakes the
 * queue. The caller frees the tunnel with apn_tun_free() after unlocking.
 */
static void apn_tun_fallback(struct apn_tunnel *t, enum apn_tun_stat cause, const char *why)
{
	struct apn_dev *apn = t->apn;
	struct net_device *ndev = t->ndev;
	struct netdev_queue *txq = netdev_get_tx_queue(ndev, 0);
	u32 head, tail, sent = 0, dropped = 0;

	__netif_tx_lock_bh(txq);
	RCU_INIT_POINTER(apn->tun.active, NULL);
	head = t->tu_head;
	tail = READ_ONCE(t->to_user->tail);
	if (head - tail > t->slots)		/* a bad tail: nothing can be trusted */
		tail = head;
	for (; tail != head; tail++) {
		struct apn_tun_slot *slot = apn_tun_slot(t, t->to_user, tail);
		u32 len = READ_ONCE(slot->len);
		struct sk_buff *skb;

		if (!apn_netdev_tx_ready(ndev) || len < ETH_HLEN || len > t->max_frame) {
			dropped++;
			continue;
		}
		skb = netdev_alloc_skb(ndev, len);
		if (!skb) {
			dropped++;
			continue;
		}
		skb_put_data(skb, slot + 1, len);
		if (apn_netdev_xmit_direct(skb, ndev, true) == NETDEV_TX_BUSY) {
			dev_kfree_skb_any(skb);
			dropped += head - tail;
			break;
		}
		sent++;
	}
	if (sent)
		apn_netdev_tx_doorbell(ndev);
	__netif_tx_unlock_bh(txq);

	/* Frames the process queued for us but never kicked are lost. */
	head = READ_ONCE(t->to_kernel->head);
	if (cause != APN_TUN_FALLBACK_ERROR && head - t->tk_tail <= t->slots)
		dropped += head - t->tk_tail;

	local_bh_disable();
	if (netif_running(ndev))
		netif_wake_queue(ndev);
	local_bh_enable();

	apn_tun_count(apn, cause, 1);
	apn_tun_count(apn, APN_TUN_FALLBACK_SENT, sent);
	apn_tun_count(apn, APN_TUN_FALLBACK_DROPPED, dropped);
	dev_info(&apn->pdev->dev, "tunnel: %s, back to direct access (%u frames sent directly, %u dropped)\n",
		 why, sent, dropped);
	/*
	 * Pollers re-check; poll() has nothing to report for a tunnel that is
	 * gone, so the process finds out from its next KICK (ENOTCONN).
	 */
	wake_up_interruptible_all(&apn->ep_wq[t->endpoint]);
}

/* After apn_tun_fallback() and tun.lock dropped; the watchdog frees itself. */
static void apn_tun_free(struct apn_tunnel *t, bool from_watchdog)
{
	/* poll() may still look at the rings. */
	synchronize_rcu();
	if (from_watchdog)
		cancel_delayed_work(&t->watchdog);
	else
		cancel_delayed_work_sync(&t->watchdog);
	kref_put(&t->mem->ref, apn_tun_mem_free);
	kfree(t);
}

static void apn_tun_fallback_error(struct apn_tunnel *t, const char *what, u32 value)
{
	char why[64];

	dev_warn_ratelimited(&t->apn->pdev->dev, "tunnel: pid %d wrote a bad %s (%u)\n",
			     t->pid, what, value);
	snprintf(why, sizeof(why), "bad %s from pid %d", what, t->pid);
	apn_tun_fallback(t, APN_TUN_FALLBACK_ERROR, why);
}

static void apn_tun_watchdog(struct work_struct *work)
{
	struct apn_tunnel *t = container_of(to_delayed_work(work), struct apn_tunnel, watchdog);
	struct apn_tunnel_dev *tun = &t->apn->tun;
	unsigned long elapsed;
	char why[64];

	mutex_lock(&tun->lock);
	/* Detached meanwhile: whoever did it waits for us, then frees t. */
	if (rcu_access_pointer(tun->active) != t) {
		mutex_unlock(&tun->lock);
		return;
	}
	if (READ_ONCE(t->broken)) {
		apn_tun_fallback_error(t, "to-user tail", READ_ONCE(t->to_user->tail));
	} else {
		elapsed = jiffies - READ_ONCE(t->last_kick);
		if (elapsed < t->timeout) {
			schedule_delayed_work(&t->watchdog, t->timeout - elapsed);
			mutex_unlock(&tun->lock);
			return;
		}
		snprintf(why, sizeof(why), "watchdog expired after %u ms",
			 jiffies_to_msecs(elapsed));
		apn_tun_fallback(t, APN_TUN_FALLBACK_WATCHDOG, why);
	}
	mutex_unlock(&tun->lock);
	apn_tun_free(t, true);
}

/* The tunnel f owns, or NULL. tun.lock held. */
static struct apn_tunnel *apn_tun_owned(struct apn_file *f)
{
	struct apn_tunnel *t = rcu_dereference_protected(f->apn->tun.active,
							 lockdep_is_held(&f->apn->tun.lock));

	return t && t->owner == f ? t : NULL;
}

/* The file is being released (the process closed it, exited or was killed). */
void apn_tunnel_release(struct apn_file *f)
{
	struct apn_tunnel_dev *tun = &f->apn->tun;
	struct apn_tunnel *t;
	char why[64];

	mutex_lock(&tun->lock);
	t = apn_tun_owned(f);
	if (t) {
		snprintf(why, sizeof(why), "owner pid %d closed the device or exited", t->pid);
		apn_tun_fallback(t, APN_TUN_FALLBACK_RELEASE, why);
	}
	mutex_unlock(&tun->lock);
	if (t)
		apn_tun_free(t, false);
}

/* apnN is going away (device removal): no tunnel outlives it. */
void apn_tunnel_shutdown(struct apn_dev *apn)
{
	struct apn_tunnel_dev *tun = &apn->tun;
	struct apn_tunnel *t;

	mutex_lock(&tun->lock);
	t = rcu_dereference_protected(tun->active, lockdep_is_held(&tun->lock));
	if (t)
		apn_tun_fallback(t, APN_TUN_FALLBACK_REMOVE, "network interface going away");
	mutex_unlock(&tun->lock);
	if (t)
		apn_tun_free(t, false);
}

/* ---- ioctls ------------------------------------------------------------------------- */

static int apn_tun_attach(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_tunnel_dev *tun = &apn->tun;
	struct apn_tunnel_attach req;
	struct apn_tunnel *t = NULL;
	struct net_device *ndev;
	int endpoint, ret = 0;
	u32 max_frame;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	if (req.flags || memchr_inv(req.reserved, 0, sizeof(req.reserved)))
		return -EINVAL;
	req.slots = req.slots ?: APN_TUN_SLOTS_DEFAULT;
	req.watchdog_ms = req.watchdog_ms ?: APN_TUN_WATCHDOG_DEFAULT_MS;
	if (!is_power_of_2(req.slots) || req.slots < APN_TUN_SLOTS_MIN ||
	    req.slots > APN_TUN_SLOTS_MAX || req.watchdog_ms < APN_TUN_WATCHDOG_MIN_MS ||
	    req.watchdog_ms > APN_TUN_WATCHDOG_MAX_MS)
		return -EINVAL;

	/* The endpoint lives as long as the file: checking it once is enough. */
	mutex_lock(&apn->lock);
	endpoint = apn->dead ? -ENODEV : f->endpoint < 0 ? -EINVAL : f->endpoint;
	mutex_unlock(&apn->lock);
	if (endpoint < 0)
		return endpoint;

	mutex_lock(&tun->lock);
	ndev = READ_ONCE(apn->netdev);
	if (!ndev) {
		ret = -EOPNOTSUPP;		/* no network interface (or going away) */
		goto out;
	}
	if (rcu_access_pointer(tun->active)) {
		ret = -EBUSY;
		goto out;
	}
	/* The largest frame the stack hands us: MTU, Ethernet header, VLAN tag. */
	max_frame = ndev->max_mtu + VLAN_ETH_HLEN;
	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t) {
		ret = -ENOMEM;
		goto out;
	}
	t->slot_bytes = roundup_pow_of_two(sizeof(struct apn_tun_slot) + max_frame);
	t->mem = apn_tun_mem_alloc(req.slots, t->slot_bytes);
	if (!t->mem) {
		kfree(t);
		ret = -ENOMEM;
		goto out;
	}
	t->apn = apn;
	t->owner = f;
	t->ndev = ndev;
	t->to_user = t->mem->ring[0];
	t->to_kernel = t->mem->ring[1];
	t->slots = req.slots;
	t->max_frame = max_frame;
	t->endpoint = endpoint;
	t->pid = task_tgid_vnr(current);
	t->watchdog_ms = req.watchdog_ms;
	t->timeout = max(msecs_to_jiffies(req.watchdog_ms), 1UL);
	t->last_kick = jiffies;
	INIT_DELAYED_WORK(&t->watchdog, apn_tun_watchdog);

	__netif_tx_lock_bh(netdev_get_tx_queue(ndev, 0));
	rcu_assign_pointer(tun->active, t);
	__netif_tx_unlock_bh(netdev_get_tx_queue(ndev, 0));
	schedule_delayed_work(&t->watchdog, t->timeout);
	apn_tun_count(apn, APN_TUN_ATTACHES, 1);
	dev_info(&apn->pdev->dev, "tunnel attached by pid %d (%s): %s traffic through user space, %u slots of %u bytes each way, watchdog %u ms\n",
		 t->pid, current->comm, ndev->name, t->slots, t->slot_bytes, t->watchdog_ms);
	req.slot_bytes = t->slot_bytes;
out:
	mutex_unlock(&tun->lock);
	if (ret)
		return ret;
	/* The tunnel stays attached if this fails: closing the file detaches it. */
	return copy_to_user(uarg, &req, sizeof(req)) ? -EFAULT : 0;
}

/*
 * Takes the frames the process put in the to-kernel ring. Returns 0, or 1
 * after a bad value (the caller detaches). A frame for the wire that does not
 * fit the TX ring now stays for the next KICK. tun.lock held.
 */
static int apn_tun_consume(struct apn_tunnel *t)
{
	struct apn_dev *apn = t->apn;
	struct net_device *ndev = t->ndev;
	struct netdev_queue *txq = netdev_get_tx_queue(ndev, 0);
	/* Pairs with the process's release of head: the slots before it are written. */
	u32 head = smp_load_acquire(&t->to_kernel->head);
	u32 tail = t->tk_tail;
	netdev_tx_t tx = NETDEV_TX_OK;
	bool down;

	if (head - tail > t->slots) {
		apn_tun_fallback_error(t, "to-kernel head", head);
		return 1;
	}
	for (; tail != head; tail++) {
		struct apn_tun_slot *slot = apn_tun_slot(t, t->to_kernel, tail);
		u16 len = READ_ONCE(slot->len), flags = READ_ONCE(slot->flags);
		struct sk_buff *skb;

		/* A slot holds slot_bytes: what the process may write (uapi). */
		if (len < ETH_HLEN || len > t->slot_bytes - sizeof(*slot)) {
			apn_tun_fallback_error(t, "frame length", len);
			return 1;
		}
		if (flags & ~APN_TUN_F_WIRE) {
			apn_tun_fallback_error(t, "slot flags", flags);
			return 1;
		}
		/* It fits its slot but neither apnN nor the device takes it. */
		skb = len > t->max_frame ? NULL :
		      __netdev_alloc_skb(ndev, len + NET_IP_ALIGN, GFP_KERNEL);
		if (!skb) {
			apn_tun_count(apn, APN_TUN_FROM_USER_DROPPED, 1);
			continue;
		}
		skb_reserve(skb, NET_IP_ALIGN);
		/* One copy; the process may scribble on the slot meanwhile, to its own loss. */
		skb_put_data(skb, slot + 1, len);

		if (!(flags & APN_TUN_F_WIRE)) {
			if (!netif_running(ndev)) {
				dev_kfree_skb(skb);
				apn_tun_count(apn, APN_TUN_FROM_USER_DROPPED, 1);
				continue;
			}
			skb->protocol = eth_type_trans(skb, ndev);
			netif_rx(skb);
			apn_tun_count(apn, APN_TUN_TO_STACK, 1);
			continue;
		}
		__netif_tx_lock_bh(txq);
		down = !apn_netdev_tx_ready(ndev);
		if (!down)
			tx = apn_netdev_xmit_direct(skb, ndev, false);
		__netif_tx_unlock_bh(txq);
		if (down) {
			dev_kfree_skb(skb);
			apn_tun_count(apn, APN_TUN_FROM_USER_DROPPED, 1);
			continue;
		}
		if (tx == NETDEV_TX_BUSY) {
			/* The TX ring is full: the frame waits for the next KICK. */
			dev_kfree_skb(skb);
			break;
		}
		apn_tun_count(apn, APN_TUN_TO_WIRE, 1);
	}
	t->tk_tail = tail;
	/* Our reads of the slots are done before the process may reuse them. */
	smp_store_release(&t->to_kernel->tail, tail);
	return 0;
}

static int apn_tun_kick(struct apn_file *f)
{
	struct apn_tunnel_dev *tun = &f->apn->tun;
	struct apn_tunnel *t;
	struct net_device *ndev;
	u32 head, tail;

	mutex_lock(&tun->lock);
	t = apn_tun_owned(f);
	if (!t) {
		mutex_unlock(&tun->lock);
		return -ENOTCONN;
	}
	ndev = t->ndev;
	WRITE_ONCE(t->last_kick, jiffies);
	apn_tun_count(f->apn, APN_TUN_KICKS, 1);
	if (READ_ONCE(t->broken)) {
		apn_tun_fallback_error(t, "to-user tail", READ_ONCE(t->to_user->tail));
		goto detached;
	}
	if (apn_tun_consume(t))
		goto detached;

	head = READ_ONCE(t->tu_head);
	tail = READ_ONCE(t->to_user->tail);
	if (head - tail > t->slots) {
		apn_tun_fallback_error(t, "to-user tail", tail);
		goto detached;
	}
	/* Pairs with the barrier in xmit after it stops the queue. */
	smp_mb();
	if (netif_queue_stopped(ndev) && netif_running(ndev)) {
		if (READ_ONCE(t->tu_head) - READ_ONCE(t->to_user->tail) < t->slots) {
			local_bh_disable();
			netif_wake_queue(ndev);
			local_bh_enable();
		} else {
			/*
			 * The process is alive (it kicked): its full ring is flow
			 * control, not a hung transmitter for the TX watchdog.
			 */
			txq_trans_cond_update(netdev_get_tx_queue(ndev, 0));
		}
	}
	mutex_unlock(&tun->lock);
	return 0;

detached:
	mutex_unlock(&tun->lock);
	apn_tun_free(t, false);
	return -EPROTO;
}

static int apn_tun_detach(struct apn_file *f)
{
	struct apn_tunnel_dev *tun = &f->apn->tun;
	struct apn_tunnel *t;
	char why[64];

	mutex_lock(&tun->lock);
	t = apn_tun_owned(f);
	if (t) {
		snprintf(why, sizeof(why), "detached by pid %d", task_tgid_vnr(current));
		apn_tun_fallback(t, APN_TUN_FALLBACK_DETACH, why);
	}
	mutex_unlock(&tun->lock);
	if (!t)
		return -ENOTCONN;
	apn_tun_free(t, false);
	return 0;
}

long apn_tunnel_ioctl(struct apn_file *f, unsigned int cmd, void __user *uarg)
{
	switch (cmd) {
	case APN_IOC_TUNNEL_ATTACH:
		return apn_tun_attach(f, uarg);
	case APN_IOC_TUNNEL_DETACH:
		return apn_tun_detach(f);
	case APN_IOC_TUNNEL_KICK:
		return apn_tun_kick(f);
	default:
		return -ENOTTY;
	}
}

/* ---- counters: ethtool -S and sysfs ---------------------------------------------- */

/* "attached pid=N slots=S slot_bytes=B watchdog_ms=W", or "direct". */
static ssize_t state_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct apn_dev *apn = dev_get_drvdata(dev);
	struct apn_tunnel *t;
	ssize_t n;

	mutex_lock(&apn->tun.lock);
	t = rcu_dereference_protected(apn->tun.active, lockdep_is_held(&apn->tun.lock));
	if (t)
		n = sysfs_emit(buf, "attached pid=%d slots=%u slot_bytes=%u watchdog_ms=%u\n",
			       t->pid, t->slots, t->slot_bytes, t->watchdog_ms);
	else
		n = sysfs_emit(buf, "direct\n");
	mutex_unlock(&apn->tun.lock);
	return n;
}
static DEVICE_ATTR_RO(state);

struct apn_tun_attr {
	struct device_attribute attr;
	enum apn_tun_stat id;
};

static ssize_t apn_tun_stat_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct apn_dev *apn = dev_get_drvdata(dev);
	struct apn_tun_attr *ta = container_of(attr, struct apn_tun_attr, attr);

	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(&apn->tun.stats[ta->id]));
}

/* The attribute names are the counters' names in ethtool -S too. */
#define APN_TUN_ATTR(sid, sname) \
	[sid] = { .attr = __ATTR(sname, 0444, apn_tun_stat_show, NULL), .id = sid }
static struct apn_tun_attr apn_tun_attrs[APN_TUN__COUNT] = {
	APN_TUN_ATTR(APN_TUN_ATTACHES, attaches),
	APN_TUN_ATTR(APN_TUN_TO_USER, frames_to_user),
	APN_TUN_ATTR(APN_TUN_TO_USER_FULL, to_user_full),
	APN_TUN_ATTR(APN_TUN_TO_USER_DROPPED, to_user_dropped),
	APN_TUN_ATTR(APN_TUN_TO_STACK, frames_to_stack),
	APN_TUN_ATTR(APN_TUN_TO_WIRE, frames_to_wire),
	APN_TUN_ATTR(APN_TUN_FROM_USER_DROPPED, from_user_dropped),
	APN_TUN_ATTR(APN_TUN_KICKS, kicks),
	APN_TUN_ATTR(APN_TUN_FALLBACK_SENT, fallback_sent),
	APN_TUN_ATTR(APN_TUN_FALLBACK_DROPPED, fallback_dropped),
	APN_TUN_ATTR(APN_TUN_FALLBACK_RELEASE, fallback_release),
	APN_TUN_ATTR(APN_TUN_FALLBACK_DETACH, fallback_detach),
	APN_TUN_ATTR(APN_TUN_FALLBACK_WATCHDOG, fallback_watchdog),
	APN_TUN_ATTR(APN_TUN_FALLBACK_ERROR, fallback_error),
	APN_TUN_ATTR(APN_TUN_FALLBACK_REMOVE, fallback_remove),
};

#undef APN_TUN_ATTR

/* state, the counters, and the NULL that ends the list */
static struct attribute *apn_tun_attr_ptrs[] = {
	&dev_attr_state.attr,
	&apn_tun_attrs[APN_TUN_ATTACHES].attr.attr,
	&apn_tun_attrs[APN_TUN_TO_USER].attr.attr,
	&apn_tun_attrs[APN_TUN_TO_USER_FULL].attr.attr,
	&apn_tun_attrs[APN_TUN_TO_USER_DROPPED].attr.attr,
	&apn_tun_attrs[APN_TUN_TO_STACK].attr.attr,
	&apn_tun_attrs[APN_TUN_TO_WIRE].attr.attr,
	&apn_tun_attrs[APN_TUN_FROM_USER_DROPPED].attr.attr,
	&apn_tun_attrs[APN_TUN_KICKS].attr.attr,
	&apn_tun_attrs[APN_TUN_FALLBACK_SENT].attr.attr,
	&apn_tun_attrs[APN_TUN_FALLBACK_DROPPED].attr.attr,
	&apn_tun_attrs[APN_TUN_FALLBACK_RELEASE].attr.attr,
	&apn_tun_attrs[APN_TUN_FALLBACK_DETACH].attr.attr,
	&apn_tun_attrs[APN_TUN_FALLBACK_WATCHDOG].attr.attr,
	&apn_tun_attrs[APN_TUN_FALLBACK_ERROR].attr.attr,
	&apn_tun_attrs[APN_TUN_FALLBACK_REMOVE].attr.attr,
	NULL,
};

const struct attribute_group apn_tunnel_attr_group = {
	.name = "tunnel",
	.attrs = apn_tun_attr_ptrs,
};

/* "tunnel_attached", then every counter. */
unsigned int apn_tunnel_stat_count(void)
{
	return 1 + APN_TUN__COUNT;
}

void apn_tunnel_stat_strings(u8 **data)
{
	unsigned int i;

	ethtool_sprintf(data, "tunnel_attached");
	for (i = 0; i < APN_TUN__COUNT; i++)
		ethtool_sprintf(data, "tunnel_%s", apn_tun_attrs[i].attr.attr.name);
}

void apn_tunnel_stat_values(struct apn_dev *apn, u64 *data)
{
	unsigned int i;

	*data++ = !!rcu_access_pointer(apn->tun.active);
	for (i = 0; i < APN_TUN__COUNT; i++)
		*data++ = atomic64_read(&apn->tun.stats[i]);
}
