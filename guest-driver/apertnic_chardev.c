// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apertnic character device (/dev/apertnicN, ABI in uapi/apertnic.h).
 *
 * Each open file may own one endpoint, memory registrations, and incoming and
 * outgoing apertures; closing it destroys them all. User memory is never
 * touched with apn_dev.lock held, because faults on our own mappings take it.
 *
 * Every mapping is filled in page by page by apn_vm_fault(), which checks
 * ownership at fault time. That lets DESTROY_OUT_APERTURE (and device removal)
 * revoke a mapping with unmap_mapping_range() without racing a concurrent
 * mmap(): a slot handed to another file can never stay mapped by the old one,
 * whose next access gets SIGBUS.
 *
 * The endpoint's queues (two, four with a DMA channel) are the exception: they
 * are ordinary (coherent DMA) memory, mapped whole at mmap() time. They live until the file is
 * released (no mapping is left then: each holds the file) or until the device
 * goes away, when every mapping is zapped before the memory is freed; the
 * fault handler refuses to refill them.
 */

#include <linux/bitmap.h>
#include <linux/capability.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/if_ether.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "apertnic.h"
#include "uapi/apertnic.h"

/* An incoming entry's first_byte is 32 bits, so offsets into a region must fit. */
#define APN_MR_MAX_LEN		(1ULL << 32)
#define APN_MIN_APERTURE	64
#define APN_OUT_BASE_PGOFF	((unsigned long)(APN_MMAP_OUT_BASE >> PAGE_SHIFT))
#define APN_EVQ_PGOFF		((unsigned long)(APN_MMAP_EVQ >> PAGE_SHIFT))
#define APN_VARQ_PGOFF		((unsigned long)(APN_MMAP_VARQ >> PAGE_SHIFT))
#define APN_RQ_PGOFF		((unsigned long)(APN_MMAP_RQ >> PAGE_SHIFT))
#define APN_CQ_PGOFF		((unsigned long)(APN_MMAP_CQ >> PAGE_SHIFT))
#define APN_CQ_END_PGOFF	((unsigned long)((APN_MMAP_CQ + (1ull << 28)) >> PAGE_SHIFT))
#define APN_ENTRY_DATA \
	(APN_ENTRY_VALID | APN_ENTRY_TYPE_DATA << APN_ENTRY_TYPE_SHIFT)
#define APN_ENTRY_EVENT \
	(APN_ENTRY_VALID | APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT)

static bool param_trust_users;
module_param_named(trust_users, param_trust_users, bool, 0644);
MODULE_PARM_DESC(trust_users,
		 "Grant APN_ENDPOINT_TRUSTED without CAP_NET_ADMIN (default no): trusted endpoints program their apertures' nonces and destinations and send connection messages themselves");

/* ---- memory registrations ----------------------------------------------- */

/* Pins without apn_dev.lock held: pinning takes mmap_lock, which faults hold before it. */
static struct apn_mr *apn_mr_pin(struct apn_dev *apn, u64 addr, u64 len)
{
	unsigned long npages = len >> PAGE_SHIFT;
	unsigned long lock_limit, new_pinned, pinned = 0;
	struct apn_mr *mr;
	int ret;

	mr = kzalloc(sizeof(*mr), GFP_KERNEL);
	if (!mr)
		return ERR_PTR(-ENOMEM);
	mr->len = len;
	mr->npages = npages;
	mr->mm = current->mm;
	mmgrab(mr->mm);

	/* Pinned pages count against RLIMIT_MEMLOCK, as RDMA memory regions do. */
	lock_limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	new_pinned = atomic64_add_return(npages, &mr->mm->pinned_vm);
	if (new_pinned > lock_limit && !capable(CAP_IPC_LOCK)) {
		dev_info_ratelimited(&apn->pdev->dev,
				     "%s[%d]: pinning %lu pages exceeds RLIMIT_MEMLOCK (%lu pages)\n",
				     current->comm, task_pid_nr(current), npages, lock_limit);
		ret = -ENOMEM;
		goto err_uncharge;
	}

	mr->pages = kvmalloc_array(npages, sizeof(*mr->pages), GFP_KERNEL);
	if (!mr->pages) {
		ret = -ENOMEM;
		goto err_uncharge;
	}
	while (pinned < npages) {
		ret = pin_user_pages_fast(addr + pinned * PAGE_SIZE, npages - pinned,
					  FOLL_WRITE | FOLL_LONGTERM, mr->pages + pinned);
		if (ret <= 0) {
			ret = ret ?: -EFAULT;
			goto err_unpin;
		}
		pinned += ret;
	}
	return mr;

err_unpin:
	unpin_user_pages(mr->pages, pinned);
	kvfree(mr->pages);
err_uncharge:
	atomic64_sub(npages, &mr->mm->pinned_vm);
	mmdrop(mr->mm);
	kfree(mr);
	return ERR_PTR(ret);
}

static void apn_mr_unpin(struct apn_mr *mr)
{
	/* The device may have written any page. */
	unpin_user_pages_dirty_lock(mr->pages, mr->npages, true);
	kvfree(mr->pages);
	atomic64_sub(mr->npages, &mr->mm->pinned_vm);
	mmdrop(mr->mm);
	kfree(mr);
}

static void apn_mr_unmap(struct apn_dev *apn, struct apn_mr *mr, unsigned long mapped)
{
	struct device *dev = &apn->pdev->dev;
	unsigned long i;

	for (i = 0; i < mapped; i++)
		dma_unmap_page(dev, le64_to_cpu(mr->page_list[i]), PAGE_SIZE, DMA_BIDIRECTIONAL);
	dma_free_coherent(dev, mr->npages * sizeof(__le64), mr->page_list, mr->page_list_dma);
}

/* Builds the page list the device reads: one address per 4 KiB page. Lock held. */
static int apn_mr_map(struct apn_dev *apn, struct apn_mr *mr)
{
	struct device *dev = &apn->pdev->dev;
	unsigned long i;
	dma_addr_t addr;

	BUILD_BUG_ON(PAGE_SIZE != APN_PAGE_SIZE);
	mr->page_list = dma_alloc_coherent(dev, mr->npages * sizeof(__le64),
					   &mr->page_list_dma, GFP_KERNEL);
	if (!mr->page_list)
		return -ENOMEM;
	for (i = 0; i < mr->npages; i++) {
		addr = dma_map_page(dev, mr->pages[i], 0, PAGE_SIZE, DMA_BIDIRECTIONAL);
		if (dma_mapping_error(dev, addr)) {
			apn_mr_unmap(apn, mr, i);
			return -ENOMEM;
		}
		mr->page_list[i] = cpu_to_le64(addr);
	}
	return 0;
}

/* Lock held, device alive, no aperture uses it. */
static void apn_mr_destroy(struct apn_dev *apn, struct apn_mr *mr)
{
	apn_mr_unmap(apn, mr, mr->npages);
	apn_mr_unpin(mr);
}

/* ---- endpoints: queues, ports, registers ---------------------------------- */

/*
 * Queue memory is as good as pinned (the device writes it at any time), so it
 * counts against RLIMIT_MEMLOCK like a registration: otherwise any user could
 * tie up 64 endpoints x 17 MiB of contiguous kernel memory.
 */
static int apn_charge(struct apn_dev *apn, unsigned long npages, struct mm_struct **mmp)
{
	unsigned long limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	struct mm_struct *mm = current->mm;

	if (atomic64_add_return(npages, &mm->pinned_vm) > limit && !capable(CAP_IPC_LOCK)) {
		atomic64_sub(npages, &mm->pinned_vm);
		dev_info_ratelimited(&apn->pdev->dev,
				     "%s[%d]: endpoint queues of %lu pages exceed RLIMIT_MEMLOCK (%lu pages)\n",
				     current->comm, task_pid_nr(current), npages, limit);
		return -ENOMEM;
	}
	mmgrab(mm);
	*mmp = mm;
	return 0;
}

static void apn_uncharge(struct mm_struct *mm, unsigned long npages)
{
	if (!mm)
		return;
	atomic64_sub(npages, &mm->pinned_vm);
	mmdrop(mm);
}

/* A queue of `count` entries of `entry` bytes after the control block, zeroed. */
static int apn_queue_alloc(struct apn_dev *apn, struct apn_queue *q, u32 count, size_t entry)
{
	q->bytes = PAGE_ALIGN(sizeof(struct apn_queue_ctrl) + (size_t)count * entry);
	/* Users choose the size: failing to find 17 MiB is their problem, not a warning. */
	q->ctrl = dma_alloc_coherent(&apn->pdev->dev, q->bytes, &q->dma,
				     GFP_KERNEL | __GFP_NOWARN);
	if (!q->ctrl)
		return -ENOMEM;
	q->size = count;
	return 0;
}

static void apn_queue_free(struct apn_dev *apn, struct apn_queue *q)
{
	if (q->ctrl)
		dma_free_coherent(&apn->pdev->dev, q->bytes, q->ctrl, q->dma);
	q->ctrl = NULL;
}

/*
 * Binds a port: `want`, or with 0 the next free one of the ephemeral range
 * after the last one handed out, so that a datagram meant for a closed
 * endpoint is unlikely to reach the next one. Lock held.
 */
static int apn_port_get(struct apn_dev *apn, u16 want)
{
	unsigned long p;

	if (want) {
		if (test_bit(want, apn->ports))
			return -EADDRINUSE;
		__set_bit(want, apn->ports);
		return want;
	}
	BUILD_BUG_ON(APN_NUM_PORTS - 1 != APN_PORT_EPHEMERAL_MAX);
	p = find_next_zero_bit(apn->ports, APN_NUM_PORTS, apn->next_port);
	if (p >= APN_NUM_PORTS)
		p = find_next_zero_bit(apn->ports, APN_NUM_PORTS, APN_PORT_EPHEMERAL_MIN);
	/* Cannot happen with at most APN_MAX_ENDPOINTS endpoints; be safe anyway. */
	if (p >= APN_NUM_PORTS)
		return -EADDRNOTAVAIL;
	__set_bit(p, apn->ports);
	apn->next_port = p + 1 < APN_NUM_PORTS ? p + 1 : APN_PORT_EPHEMERAL_MIN;
	return p;
}

static void apn_ep_write(struct apn_dev *apn, int ep, unsigned int reg, u32 val)
{
	writel(val, apn->regs + APN_EP_REG(ep, reg));
}

static void __iomem *apn_ureg(struct apn_dev *apn, int ep, unsigned int reg)
{
	return apn->regs + APN_USER_PAGE((resource_size_t)ep) + reg;
}

/*
 * Pointers run free and need not start at 0: make the queue's mirror agree
 * with the device's write pointer and start the consumer there, so that the
 * library's first look at the queue finds it empty rather than full of zeros.
 * Called before the endpoint is valid, when the device posts nothing.
 */
static void apn_queue_sync(struct apn_dev *apn, int ep, struct apn_queue *q,
			   unsigned int wrptr_reg, unsigned int rdptr_reg)
{
	u32 wr = readl(apn_ureg(apn, ep, wrptr_reg));

	q->ctrl->wrptr = cpu_to_le32(wr);
	q->ctrl->rdptr = cpu_to_le32(wr);
	writel(wr, apn_ureg(apn, ep, rdptr_reg));
}

/*
 * Points the device at f's queues and port, then makes the endpoint valid:
 * CTRL goes last, so the device never posts to a half-described endpoint.
 * Lock held.
 */
static void apn_ep_start(struct apn_file *f)
{
	struct apn_dev *apn = f->apn;
	int ep = f->endpoint;

	apn_ep_write(apn, ep, APN_EPR_CTRL, 0);
	apn_ep_write(apn, ep, APN_EPR_EVQ_LO, lower_32_bits(f->evq.dma));
	apn_ep_write(apn, ep, APN_EPR_EVQ_HI, upper_32_bits(f->evq.dma));
	apn_ep_write(apn, ep, APN_EPR_EVQ_SIZE, f->evq.size);
	apn_ep_write(apn, ep, APN_EPR_VARQ_LO, lower_32_bits(f->varq.dma));
	apn_ep_write(apn, ep, APN_EPR_VARQ_HI, upper_32_bits(f->varq.dma));
	apn_ep_write(apn, ep, APN_EPR_VARQ_SIZE, f->varq.size);
	if (f->rq.ctrl) {
		/* Writing a size empties both queues: every pointer starts at 0. */
		apn_ep_write(apn, ep, APN_EPR_RQ_LO, lower_32_bits(f->rq.dma));
		apn_ep_write(apn, ep, APN_EPR_RQ_HI, upper_32_bits(f->rq.dma));
		apn_ep_write(apn, ep, APN_EPR_CQ_LO, lower_32_bits(f->cq.dma));
		apn_ep_write(apn, ep, APN_EPR_CQ_HI, upper_32_bits(f->cq.dma));
		apn_ep_write(apn, ep, APN_EPR_RQ_SIZE, f->rq.size);
		apn_ep_write(apn, ep, APN_EPR_CQ_SIZE, f->cq.size);
	}
	apn_ep_write(apn, ep, APN_EPR_PORT, f->port);
	apn_queue_sync(apn, ep, &f->evq, APN_UREG_EVQ_WRPTR, APN_UREG_EVQ_RDPTR);
	apn_queue_sync(apn, ep, &f->varq, APN_UREG_VARQ_WRPTR, APN_UREG_VARQ_RDPTR);
	/*
	 * Messages the device queued for this endpoint number until now were
	 * for a previous owner (the endpoint is not valid yet, so none after).
	 */
	apn->cm_ep_from[ep] = readl(apn->regs + APN_REG_OSQ_WRPTR);
	/* untrusted: the kernel sets up its connections (apertnic_cm.c) */
	apn_ep_write(apn, ep, APN_EPR_CTRL,
		     APN_EP_VALID | (f->trusted ? APN_EP_TRUSTED : APN_EP_KERNEL_CM));
}

/*
 * The reverse, first step of a teardown: with CTRL clear the device stops
 * posting to the queues and refuses the user page's commands; then nothing
 * of the endpoint is left on the device. The caller reads a register to
 * flush these writes before it frees the queues. Lock held.
 */
static void apn_ep_stop(struct apn_file *f)
{
	struct apn_dev *apn = f->apn;
	int ep = f->endpoint;

	apn_ep_write(apn, ep, APN_EPR_CTRL, 0);
	apn_ep_write(apn, ep, APN_EPR_EVQ_SIZE, 0);
	apn_ep_write(apn, ep, APN_EPR_VARQ_SIZE, 0);
	apn_ep_write(apn, ep, APN_EPR_PORT, 0);
	apn_ep_write(apn, ep, APN_EPR_EVQ_LO, 0);
	apn_ep_write(apn, ep, APN_EPR_EVQ_HI, 0);
	apn_ep_write(apn, ep, APN_EPR_VARQ_LO, 0);
	apn_ep_write(apn, ep, APN_EPR_VARQ_HI, 0);
	if (f->rq.ctrl) {
		/* abandons the requests in flight */
		apn_ep_write(apn, ep, APN_EPR_RQ_SIZE, 0);
		apn_ep_write(apn, ep, APN_EPR_CQ_SIZE, 0);
		apn_ep_write(apn, ep, APN_EPR_RQ_LO, 0);
		apn_ep_write(apn, ep, APN_EPR_RQ_HI, 0);
		apn_ep_write(apn, ep, APN_EPR_CQ_LO, 0);
		apn_ep_write(apn, ep, APN_EPR_CQ_HI, 0);
	}
}

/* ---- table entries -------------------------------------------------------- */

/*
 * A free entry has flags 0, so the device ignores it while the other fields
 * are written; VALID goes in last, then the device drops any cached copy.
 */
static void apn_in_publish(struct apn_dev *apn, u32 idx, const struct apn_in_entry *ent,
			   u32 flags)
{
	struct apn_in_entry *e = &apn->in_table[idx];

	*e = *ent;
	dma_wmb();
	WRITE_ONCE(e->flags, cpu_to_le32(flags));
	writel(idx, apn->regs + APN_REG_TABLE_INVAL);
}

static void apn_out_publish(struct apn_dev *apn, u32 idx, const struct apn_out_entry *ent,
			    u32 flags)
{
	struct apn_out_entry *e = &apn->out_table[idx];

	*e = *ent;
	dma_wmb();
	WRITE_ONCE(e->flags, cpu_to_le32(flags));
	writel(APN_INVAL_OUT | idx, apn->regs + APN_REG_TABLE_INVAL);
}

/*
 * Invalidates an incoming entry. The caller reads a register afterwards (to
 * flush the posted writes) before unpinning the memory behind it.
 */
static void apn_in_clear(struct apn_dev *apn, u32 idx)
{
	struct apn_in_slot *slot = &apn->in_slots[idx];

	WRITE_ONCE(apn->in_table[idx].flags, 0);
	writel(idx, apn->regs + APN_REG_TABLE_INVAL);
	if (slot->mr)			/* event apertures have no memory */
		slot->mr->users--;
	slot->mr = NULL;
	slot->owner = NULL;
}

/* Invalidates an outgoing entry and revokes the owner's mappings of its slot. */
static void apn_out_clear(struct apn_dev *apn, u32 idx)
{
	struct apn_out_slot *slot = &apn->out_slots[idx];
	struct apn_file *f = slot->owner;

	WRITE_ONCE(apn->out_table[idx].flags, 0);
	writel(APN_INVAL_OUT | idx, apn->regs + APN_REG_TABLE_INVAL);
	slot->owner = NULL;
	slot->size = 0;
	apn_cm_out_gone(f, idx);
	unmap_mapping_range(f->mapping, APN_MMAP_OUT_BASE + ((u64)idx << apn->out_slot_shift),
			    1ULL << apn->out_slot_shift, 1);
}

/*
 * Lock held, device alive: returns everything @f holds to the device. The
 * order matters: stop the endpoint (no more events, no more user-page
 * commands re-aiming its apertures), invalidate its apertures, flush, and only
 * then free what the device could have written: queues, then pinned memory.
 * The port and endpoint number are free for reuse last.
 */
static void apn_file_teardown(struct apn_file *f)
{
	struct apn_dev *apn = f->apn;
	bool has_ep = f->endpoint >= 0;
	struct apn_mr *mr;
	unsigned long id;
	u32 i;

	if (has_ep)
		apn_ep_stop(f);
	for (i = 0; i < apn->num_in; i++)
		if (apn->in_slots[i].owner == f)
			apn_in_clear(apn, i);
	for (i = 0; i < apn->num_out; i++)
		if (apn->out_slots[i].owner == f)
			apn_out_clear(apn, i);
	/* Once these writes have landed the device leaves the queues and memory alone. */
	readl(apn->regs + APN_REG_STATUS);

	if (has_ep) {
		/*
		 * No mapping of the queues is left: on release every mapping
		 * (which holds the file) is gone, and apn_revoke_files() zapped
		 * them all first. Do not zap here: all files of the device share
		 * one address_space, so that would hit other files' queues.
		 */
		apn_queue_free(apn, &f->evq);
		apn_queue_free(apn, &f->varq);
		apn_queue_free(apn, &f->rq);
		apn_queue_free(apn, &f->cq);
		apn_uncharge(f->mm, f->charged);
		f->mm = NULL;
		f->charged = 0;
	}
	xa_for_each(&f->mrs, id, mr) {
		xa_erase(&f->mrs, id);
		apn_mr_destroy(apn, mr);
	}
	if (has_ep) {
		__clear_bit(f->port, apn->ports);
		clear_bit(f->endpoint, apn->endpoints);
		f->endpoint = -1;
		f->port = 0;
		f->trusted = false;
	}
}

/*
 * Called by remove() before devres frees the device's memory: revokes all
 * mappings, then tears every file down while the device can still be told.
 * The mappings go first because the queues behind some of them are freed by
 * the teardown; faults from now on see ->dead and get SIGBUS. The files stay
 * open until their owners close them; they now fail with -ENODEV.
 */
void apn_revoke_files(struct apn_dev *apn)
{
	struct apn_file *f;
	u32 i;

	mutex_lock(&apn->lock);
	apn->dead = true;
	list_for_each_entry(f, &apn->files, node)
		unmap_mapping_range(f->mapping, 0, 0, 1);
	list_for_each_entry(f, &apn->files, node)
		apn_file_teardown(f);
	mutex_unlock(&apn->lock);
	/* Sleepers in poll() wake up to EPOLLHUP. */
	for (i = 0; i < apn->num_endpoints; i++)
		wake_up_interruptible_all(&apn->ep_wq[i]);
}

/* ---- ioctls ---------------------------------------------------------------- */

/* What the device can do, as apn_info.caps says it. Lock held, device alive. */
static u32 apn_info_caps(struct apn_dev *apn)
{
	u32 hw = readl(apn->regs + APN_REG_CAPS);
	u32 caps = APN_INFO_CAP_EVENT_AP | APN_INFO_CAP_KERNEL_CM;

	if (hw & APN_CAP_DMA)
		caps |= APN_INFO_CAP_DMA;
	if (hw & APN_CAP_READ)
		caps |= APN_INFO_CAP_READ;
	if (READ_ONCE(apn->netdev))
		caps |= APN_INFO_CAP_TUNNEL;
	return caps;
}

static int apn_get_info(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_info info = {};

	mutex_lock(&apn->lock);
	if (apn->dead) {
		mutex_unlock(&apn->lock);
		return -ENODEV;
	}
	info.abi_version = APN_ABI_VERSION;
	info.spec_version = apn->spec_version;
	memcpy(info.mac, apn->mac, sizeof(info.mac));
	info.host_id = apn->host_id;
	info.mtu = apn->mtu;
	info.num_out = apn->num_out;
	info.out_slot_size = 1U << apn->out_slot_shift;
	info.max_in = apn->num_in;
	info.num_endpoints = apn->num_endpoints;
	info.endpoint = f->endpoint < 0 ? ~0U : f->endpoint;
	info.ip = apn->ip;
	info.port = f->port;
	info.ep_flags = f->trusted ? APN_ENDPOINT_TRUSTED : 0;
	info.caps = apn_info_caps(apn);
	mutex_unlock(&apn->lock);

	return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
}

static bool apn_size_ok(u32 v, u32 min, u32 max)
{
	return is_power_of_2(v) && v >= min && v <= max;
}

/*
 * Objects a create call made stay with the file even if copying the result
 * out fails: another thread may already use them, and close frees them.
 */
static int apn_create_endpoint(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_endpoint_create req;
	struct apn_queue evq = {}, varq = {}, rq = {}, cq = {};
	struct mm_struct *mm = NULL;
	unsigned long ep = 0, npages;
	bool trusted = false;
	int port = 0, ret;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if ((req.flags & ~APN_ENDPOINT_TRUSTED) || memchr_inv(req.reserved, 0, sizeof(req.reserved)))
		return -EINVAL;
	req.evq_size = req.evq_size ?: APN_EVQ_DEFAULT_EVENTS;
	req.varq_size = req.varq_size ?: APN_VARQ_DEFAULT_BYTES;
	if (!apn_size_ok(req.evq_size, APN_EVQ_MIN_EVENTS, APN_EVQ_MAX_EVENTS) ||
	    !apn_size_ok(req.varq_size, APN_VARQ_MIN_BYTES, APN_VARQ_MAX_BYTES))
		return -EINVAL;
	if (req.rq_size) {
		req.cq_size = req.cq_size ?: req.rq_size;
		if (!apn_size_ok(req.rq_size, APN_RQ_MIN_REQS, APN_RQ_MAX_REQS) ||
		    !apn_size_ok(req.cq_size, APN_CQ_MIN_EVENTS, APN_CQ_MAX_EVENTS))
			return -EINVAL;
	} else if (req.cq_size) {
		return -EINVAL;
	}
	/* Trust lets the process aim its apertures anywhere and speak for its port. */
	if (req.flags & APN_ENDPOINT_TRUSTED) {
		if (!param_trust_users && !capable(CAP_NET_ADMIN))
			return -EPERM;
		trusted = true;
	}

	/* Allocated before taking the lock: faults on our mappings wait for it. */
	ret = apn_queue_alloc(apn, &evq, req.evq_size, sizeof(struct apn_event));
	if (!ret)
		ret = apn_queue_alloc(apn, &varq, req.varq_size, 1);
	if (!ret && req.rq_size)
		ret = apn_queue_alloc(apn, &rq, req.rq_size, sizeof(struct apn_dma_req));
	if (!ret && req.rq_size)
		ret = apn_queue_alloc(apn, &cq, req.cq_size, sizeof(struct apn_event));
	npages = (evq.bytes + varq.bytes + rq.bytes + cq.bytes) >> PAGE_SHIFT;
	if (!ret)
		ret = apn_charge(apn, npages, &mm);
	if (ret)
		goto err_free;

	mutex_lock(&apn->lock);
	if (apn->dead) {
		ret = -ENODEV;
	} else if (f->endpoint >= 0) {
		ret = -EBUSY;
	} else if (req.rq_size && !(readl(apn->regs + APN_REG_CAPS) & APN_CAP_DMA)) {
		ret = -EOPNOTSUPP;
	} else {
		ep = find_first_zero_bit(apn->endpoints, apn->num_endpoints);
		if (ep == apn->num_endpoints)
			ret = -ENOSPC;
	}
	if (!ret) {
		port = apn_port_get(apn, req.port);
		if (port < 0)
			ret = port;
	}
	if (!ret) {
		set_bit(ep, apn->endpoints);
		f->endpoint = ep;
		f->port = port;
		f->trusted = trusted;
		f->evq = evq;
		f->varq = varq;
		f->rq = rq;
		f->cq = cq;
		f->mm = mm;
		f->charged = npages;
		apn_ep_start(f);
		dev_dbg(&apn->pdev->dev, "%s[%d]: endpoint %lu, port %d%s, %u events, %u bytes, %u/%u DMA\n",
			current->comm, task_pid_nr(current), ep, port,
			trusted ? " (trusted)" : "", req.evq_size, req.varq_size,
			req.rq_size, req.cq_size);
	}
	mutex_unlock(&apn->lock);
	if (ret)
		goto err_uncharge;

	req.port = port;
	req.endpoint = ep;
	return copy_to_user(uarg, &req, sizeof(req)) ? -EFAULT : 0;

err_uncharge:
	apn_uncharge(mm, npages);
err_free:
	apn_queue_free(apn, &cq);
	apn_queue_free(apn, &rq);
	apn_queue_free(apn, &varq);
	apn_queue_free(apn, &evq);
	return ret;
}

static int apn_reg_mr(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_mr_reg req;
	struct apn_mr *mr;
	int ret;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (req.flags || !req.len || req.len > APN_MR_MAX_LEN || !PAGE_ALIGNED(req.addr) ||
	    !PAGE_ALIGNED(req.len) || req.addr + req.len < req.addr)
		return -EINVAL;

	mr = apn_mr_pin(apn, req.addr, req.len);
	if (IS_ERR(mr))
		return PTR_ERR(mr);

	mutex_lock(&apn->lock);
	if (apn->dead) {
		ret = -ENODEV;
		goto err_unpin;
	}
	ret = apn_mr_map(apn, mr);
	if (ret)
		goto err_unpin;
	ret = xa_alloc(&f->mrs, &mr->id, mr, xa_limit_31b, GFP_KERNEL);
	if (ret) {
		apn_mr_unmap(apn, mr, mr->npages);
		goto err_unpin;
	}
	req.mr_id = mr->id;
	mutex_unlock(&apn->lock);

	return copy_to_user(uarg, &req, sizeof(req)) ? -EFAULT : 0;

err_unpin:
	mutex_unlock(&apn->lock);
	apn_mr_unpin(mr);
	return ret;
}

static int apn_dereg_mr(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_mr_dereg req;
	struct apn_mr *mr;
	int ret = 0;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (req.reserved)
		return -EINVAL;

	mutex_lock(&apn->lock);
	mr = xa_load(&f->mrs, req.mr_id);
	if (apn->dead)
		ret = -ENODEV;
	else if (!mr)
		ret = -ENOENT;
	else if (mr->users)
		ret = -EBUSY;
	if (!ret) {
		xa_erase(&f->mrs, req.mr_id);
		apn_mr_destroy(apn, mr);
	}
	mutex_unlock(&apn->lock);
	return ret;
}

/*
 * Nonces and destinations are the user-programmable bits of seed 004: a
 * trusted endpoint sets them itself; an untrusted one gets none (the kernel
 * sets up its connections), unless an administrator wires it statically.
 */
static bool apn_may_program(const struct apn_file *f)
{
	return f->trusted || capable(CAP_NET_ADMIN);
}

static int apn_create_in_aperture(struct apn_file *f, void __user *uarg)
{
	const u32 known_flags = APN_IN_APERTURE_CHECK_SRC_HOST | APN_IN_APERTURE_NONCE_GIVEN |
				APN_IN_APERTURE_EVENT;
	struct apn_dev *apn = f->apn;
	struct apn_in_aperture_create req;
	struct apn_in_entry ent = {};
	u32 flags = APN_ENTRY_DATA;
	struct apn_mr *mr = NULL;
	bool event;
	u32 idx = 0;
	int ret = 0;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if ((req.flags & ~known_flags) || req.reserved)
		return -EINVAL;
	/* The entry's size is 32 bits. */
	if (req.size < APN_MIN_APERTURE || req.size > (1ULL << 31) || !is_power_of_2(req.size))
		return -EINVAL;
	/* An event aperture turns segments into events: it has no memory. */
	event = req.flags & APN_IN_APERTURE_EVENT;
	if (event && (req.mr_id || req.mr_offset))
		return -EINVAL;
	if (!(req.flags & APN_IN_APERTURE_NONCE_GIVEN))
		req.nonce = get_random_u32();

	mutex_lock(&apn->lock);
	if (!event)
		mr = xa_load(&f->mrs, req.mr_id);
	if (apn->dead)
		ret = -ENODEV;
	else if (f->endpoint < 0)
		ret = -EBADFD;
	else if ((req.flags & APN_IN_APERTURE_NONCE_GIVEN) && !apn_may_program(f))
		ret = -EPERM;
	else if (!event && !mr)
		ret = -ENOENT;
	else if (!event && (req.size > mr->len || req.mr_offset > mr->len - req.size))
		ret = -EINVAL;
	if (!ret) {
		while (idx < apn->num_in && apn->in_slots[idx].owner)
			idx++;
		if (idx == apn->num_in)
			ret = -ENOSPC;
	}
	if (!ret) {
		ent.endpoint = cpu_to_le16(f->endpoint);
		ent.nonce = cpu_to_le32(req.nonce);
		ent.size = cpu_to_le32(req.size);
		if (event) {
			flags = APN_ENTRY_EVENT;
		} else {
			ent.base = cpu_to_le64(mr->page_list_dma);
			ent.first_byte = cpu_to_le32(req.mr_offset);
			mr->users++;
		}
		if (req.flags & APN_IN_APERTURE_CHECK_SRC_HOST) {
			flags |= APN_IN_CHECK_SRC_HOST;
			ent.src_host = cpu_to_le16(req.src_host);
			ent.src_host_mask = cpu_to_le16(req.src_host_mask);
		}
		apn->in_slots[idx].owner = f;
		apn->in_slots[idx].mr = mr;
		apn_in_publish(apn, idx, &ent, flags);
	}
	mutex_unlock(&apn->lock);
	if (ret)
		return ret;

	req.in_index = idx;
	return copy_to_user(uarg, &req, sizeof(req)) ? -EFAULT : 0;
}

static int apn_destroy_in_aperture(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_in_aperture_destroy req;
	int ret = 0;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (req.reserved)
		return -EINVAL;

	mutex_lock(&apn->lock);
	if (apn->dead)
		ret = -ENODEV;
	else if (req.in_index >= apn->num_in)
		ret = -EINVAL;
	else if (apn->in_slots[req.in_index].owner != f)
		ret = -ENOENT;
	if (!ret) {
		apn_in_clear(apn, req.in_index);
		/* Flush, so the region may be deregistered as soon as we return. */
		readl(apn->regs + APN_REG_STATUS);
	}
	mutex_unlock(&apn->lock);
	return ret;
}

static int apn_create_out_aperture(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_out_aperture_create req;
	struct apn_out_entry ent = {};
	u32 idx = 0;
	int ret = 0;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if ((req.flags & ~APN_OUT_APERTURE_EVENT) || req.reserved)
		return -EINVAL;
	if (req.size < APN_MIN_APERTURE || req.size > 1U << apn->out_slot_shift ||
	    !is_power_of_2(req.size))
		return -EINVAL;

	mutex_lock(&apn->lock);
	if (apn->dead)
		ret = -ENODEV;
	else if (f->endpoint < 0)
		ret = -EBADFD;
	else if ((req.dest_host || req.dest_in_index || req.nonce) && !apn_may_program(f))
		ret = -EPERM;
	if (!ret) {
		while (idx < apn->num_out && apn->out_slots[idx].owner)
			idx++;
		if (idx == apn->num_out)
			ret = -ENOSPC;
	}
	if (!ret) {
		ent.endpoint = cpu_to_le16(f->endpoint);
		ent.dest_host = cpu_to_le16(req.dest_host);
		ent.dest_in_index = cpu_to_le32(req.dest_in_index);
		ent.nonce = cpu_to_le32(req.nonce);
		ent.size = cpu_to_le32(req.size);
		apn->out_slots[idx].owner = f;
		apn->out_slots[idx].size = req.size;
		apn_out_publish(apn, idx, &ent, req.flags & APN_OUT_APERTURE_EVENT ?
				APN_ENTRY_EVENT : APN_ENTRY_DATA);
	}
	mutex_unlock(&apn->lock);
	if (ret)
		return ret;

	req.out_index = idx;
	req.mmap_offset = APN_MMAP_OUT_BASE + ((u64)idx << apn->out_slot_shift);
	return copy_to_user(uarg, &req, sizeof(req)) ? -EFAULT : 0;
}

/* Also revokes the file's mappings of the slot: later accesses get SIGBUS. */
static int apn_destroy_out_aperture(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_out_aperture_destroy req;
	int ret = 0;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (req.reserved)
		return -EINVAL;

	mutex_lock(&apn->lock);
	if (apn->dead)
		ret = -ENODEV;
	else if (req.out_index >= apn->num_out)
		ret = -EINVAL;
	else if (apn->out_slots[req.out_index].owner != f)
		ret = -ENOENT;
	if (!ret)
		apn_out_clear(apn, req.out_index);
	mutex_unlock(&apn->lock);
	return ret;
}

static int apn_ioc_set_host_id(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_host_id req;
	int ret = 0;

	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (req.reserved)
		return -EINVAL;

	mutex_lock(&apn->lock);
	if (apn->dead) {
		ret = -ENODEV;
	} else {
		apn_set_host_id(apn, req.host_id);
		/* 0 leaves the address alone, so host-id-only callers keep working. */
		if (req.ip) {
			apn->ip = req.ip;
			writel(req.ip, apn->regs + APN_REG_IP_ADDR);
		}
	}
	mutex_unlock(&apn->lock);
	return ret;
}

static int apn_set_route(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_route req;
	u64 entry = 0;
	u32 ip = 0;
	int ret = 0;
	int i;

	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if ((req.flags & ~APN_ROUTE_CLEAR) || req.host >= APN_HOST_MAC_ENTRIES)
		return -EINVAL;
	if (!(req.flags & APN_ROUTE_CLEAR)) {
		for (i = 0; i < ETH_ALEN; i++)
			entry |= (u64)req.mac[i] << (8 * i);
		entry |= APN_HOST_VALID;
		ip = req.ip;
	}

	mutex_lock(&apn->lock);
	if (apn->dead) {
		ret = -ENODEV;
	} else {
		/* One 64-bit write, so the device never sees half a route. */
		writeq(entry, apn->regs + APN_REG_HOST_MAC_BASE + 8 * req.host);
		/* Connection messages to `host` go to this address (0: none). */
		writel(ip, apn->regs + APN_REG_HOST_IP_BASE + 4 * req.host);
	}
	mutex_unlock(&apn->lock);
	return ret;
}

static int apn_get_counters(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_counters *c;
	unsigned int i;
	int ret = 0;

	BUILD_BUG_ON(APN_CNT__COUNT > APN_IOC_COUNTERS_MAX);
	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c)
		return -ENOMEM;

	mutex_lock(&apn->lock);
	if (apn->dead) {
		ret = -ENODEV;
	} else {
		c->count = APN_CNT__COUNT;
		for (i = 0; i < APN_CNT__COUNT; i++)
			c->value[i] = apn_read_counter(apn, i);
	}
	mutex_unlock(&apn->lock);

	if (!ret && copy_to_user(uarg, c, sizeof(*c)))
		ret = -EFAULT;
	kfree(c);
	return ret;
}

static long apn_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct apn_file *f = filp->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case APN_IOC_GET_INFO:
		return apn_get_info(f, uarg);
	case APN_IOC_CREATE_ENDPOINT:
		return apn_create_endpoint(f, uarg);
	case APN_IOC_REG_MR:
		return apn_reg_mr(f, uarg);
	case APN_IOC_DEREG_MR:
		return apn_dereg_mr(f, uarg);
	case APN_IOC_CREATE_IN_APERTURE:
		return apn_create_in_aperture(f, uarg);
	case APN_IOC_DESTROY_IN_APERTURE:
		return apn_destroy_in_aperture(f, uarg);
	case APN_IOC_CREATE_OUT_APERTURE:
		return apn_create_out_aperture(f, uarg);
	case APN_IOC_DESTROY_OUT_APERTURE:
		return apn_destroy_out_aperture(f, uarg);
	case APN_IOC_SET_HOST_ID:
		return apn_ioc_set_host_id(f, uarg);
	case APN_IOC_SET_ROUTE:
		return apn_set_route(f, uarg);
	case APN_IOC_GET_COUNTERS:
		return apn_get_counters(f, uarg);
	case APN_IOC_CONNECT:
		return apn_cm_ioc_connect(f, uarg);
	case APN_IOC_ACCEPT:
		return apn_cm_ioc_accept(f, uarg);
	case APN_IOC_TUNNEL_ATTACH:
	case APN_IOC_TUNNEL_DETACH:
	case APN_IOC_TUNNEL_KICK:
		return apn_tunnel_ioctl(f, cmd, uarg);
	default:
		return -ENOTTY;
	}
}

/* ---- mmap ------------------------------------------------------------------ */

/*
 * The BAR page behind page @pgoff of @f's mmap space, or 0 if @f may not map
 * it: the only pages it may map are its endpoint's user page (at offset
 * APN_MMAP_USER_PAGE) and, in each outgoing aperture it owns, the pages
 * covering the aperture's size. Lock held.
 */
static unsigned long apn_pfn(struct apn_file *f, unsigned long pgoff)
{
	struct apn_dev *apn = f->apn;
	unsigned int shift = apn->out_slot_shift - PAGE_SHIFT;
	struct apn_out_slot *slot;
	unsigned long idx, page;

	if (pgoff == APN_MMAP_USER_PAGE >> PAGE_SHIFT)
		return f->endpoint < 0 ? 0 :
		       PHYS_PFN(apn->regs_phys + APN_USER_PAGE((resource_size_t)f->endpoint));
	if (pgoff < APN_OUT_BASE_PGOFF)
		return 0;
	pgoff -= APN_OUT_BASE_PGOFF;
	idx = pgoff >> shift;
	page = pgoff & ((1UL << shift) - 1);
	if (idx >= apn->num_out)
		return 0;
	slot = &apn->out_slots[idx];
	if (slot->owner != f || page >= DIV_ROUND_UP(slot->size, PAGE_SIZE))
		return 0;
	return PHYS_PFN(apn->ap_phys) + pgoff;
}

static vm_fault_t apn_vm_fault(struct vm_fault *vmf)
{
	struct apn_file *f = vmf->vma->vm_file->private_data;
	struct apn_dev *apn = f->apn;
	unsigned long pfn = 0;
	vm_fault_t ret;

	mutex_lock(&apn->lock);
	if (!apn->dead)
		pfn = apn_pfn(f, vmf->pgoff);
	/* Inserted under the lock, so a concurrent revoke cannot miss it. */
	ret = pfn ? vmf_insert_pfn(vmf->vma, vmf->address, pfn) : VM_FAULT_SIGBUS;
	mutex_unlock(&apn->lock);
	return ret;
}

static const struct vm_operations_struct apn_vm_ops = {
	.fault = apn_vm_fault,
};

/* The mappable pages of an aperture are a prefix of its slot: checking the ends suffices. */
static bool apn_mmap_allowed(struct apn_file *f, unsigned long first, unsigned long last)
{
	unsigned int shift = f->apn->out_slot_shift - PAGE_SHIFT;

	if (!apn_pfn(f, first) || !apn_pfn(f, last))
		return false;
	if (first < APN_OUT_BASE_PGOFF)
		return last == first;
	return (first - APN_OUT_BASE_PGOFF) >> shift == (last - APN_OUT_BASE_PGOFF) >> shift;
}

/* The queue whose mmap range holds @pgoff, and the page within it; NULL if none. */
static struct apn_queue *apn_queue_at(struct apn_file *f, unsigned long pgoff,
				      unsigned long *first)
{
	if (pgoff >= APN_EVQ_PGOFF && pgoff < APN_VARQ_PGOFF) {
		*first = pgoff - APN_EVQ_PGOFF;
		return &f->evq;
	}
	if (pgoff >= APN_VARQ_PGOFF && pgoff < APN_RQ_PGOFF) {
		*first = pgoff - APN_VARQ_PGOFF;
		return &f->varq;
	}
	if (pgoff >= APN_RQ_PGOFF && pgoff < APN_CQ_PGOFF) {
		*first = pgoff - APN_RQ_PGOFF;
		return &f->rq;
	}
	if (pgoff >= APN_CQ_PGOFF && pgoff < APN_CQ_END_PGOFF) {
		*first = pgoff - APN_CQ_PGOFF;
		return &f->cq;
	}
	return NULL;
}

/*
 * Maps pages [first, first + vma_pages) of a queue, all at once. Lock held,
 * device alive: the queue cannot be freed under us.
 */
static int apn_mmap_queue(struct apn_file *f, struct apn_queue *q, unsigned long first,
			  struct vm_area_struct *vma)
{
	unsigned long npages = vma_pages(vma), pgoff = vma->vm_pgoff, qpages;
	int ret;

	if (f->endpoint < 0 || !q->ctrl)
		return -EINVAL;
	qpages = q->bytes >> PAGE_SHIFT;
	if (first >= qpages || npages > qpages - first)
		return -EINVAL;
	/*
	 * Once zapped (device removal) the pages must not come back: a fault
	 * reaches apn_vm_fault(), which refuses every queue offset.
	 */
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP;
	vma->vm_ops = &apn_vm_ops;
	/* dma_mmap_coherent() takes the offset into the buffer from vm_pgoff. */
	vma->vm_pgoff = first;
	ret = dma_mmap_coherent(&f->apn->pdev->dev, vma, q->ctrl, q->dma, q->bytes);
	vma->vm_pgoff = pgoff;
	return ret;
}

static int apn_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct apn_file *f = filp->private_data;
	struct apn_dev *apn = f->apn;
	struct apn_queue *q;
	unsigned long first = 0;
	int ret = 0;

	/* Copy-on-write mappings of device registers or queues make no sense. */
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (apn_tunnel_mmap_offset(vma->vm_pgoff))
		return apn_tunnel_mmap(f, vma);

	q = apn_queue_at(f, vma->vm_pgoff, &first);
	mutex_lock(&apn->lock);
	if (apn->dead)
		ret = -ENODEV;
	else if (q)
		ret = apn_mmap_queue(f, q, first, vma);
	else if (!apn_mmap_allowed(f, vma->vm_pgoff, vma->vm_pgoff + vma_pages(vma) - 1))
		ret = -EINVAL;
	mutex_unlock(&apn->lock);
	if (ret || q)
		return ret;

	/* Nothing is mapped yet: apn_vm_fault() fills pages in as they are touched. */
	vma->vm_flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	vma->vm_ops = &apn_vm_ops;
	return 0;
}

/* ---- poll ------------------------------------------------------------------ */

/*
 * Events (or completions) are pending while the device's write pointer (its
 * mirror in the queue) is ahead of what the consumer reported on its user
 * page. Lock held, endpoint live.
 */
static bool apn_evq_pending(struct apn_file *f)
{
	u32 wr = le32_to_cpu(READ_ONCE(f->evq.ctrl->wrptr));
	u32 rd = readl(apn_ureg(f->apn, f->endpoint, APN_UREG_EVQ_RDPTR));

	if (wr != rd)
		return true;
	/* completions wake the endpoint as events do */
	if (!f->cq.ctrl)
		return false;
	wr = le32_to_cpu(READ_ONCE(f->cq.ctrl->wrptr));
	rd = readl(apn_ureg(f->apn, f->endpoint, APN_UREG_CQ_RDPTR));
	return wr != rd;
}

/*
 * The consumer arms the endpoint (APN_UREG_ARM) before it sleeps here; the
 * device then posts APN_EV_OOB_DATA on the OS queue at the next event, and
 * the IRQ handler wakes ep_wq. The drain-then-arm race (an event arriving
 * after the consumer last looked but before ARM) cannot lose a wake-up: the
 * device fires at once if ARM finds events pending, and we check the queue
 * after joining the wait queue, so an event that beat us here is seen.
 */
static __poll_t apn_poll(struct file *filp, poll_table *wait)
{
	struct apn_file *f = filp->private_data;
	struct apn_dev *apn = f->apn;
	__poll_t mask = 0;

	mutex_lock(&apn->lock);
	if (apn->dead) {
		mask = EPOLLERR | EPOLLHUP;
	} else if (f->endpoint < 0) {
		/* Nothing could ever wake it: say so rather than sleep forever. */
		mask = EPOLLERR;
	} else {
		poll_wait(filp, &apn->ep_wq[f->endpoint], wait);
		if (apn_evq_pending(f) || apn_tunnel_pending(f))
			mask = EPOLLIN | EPOLLRDNORM;
	}
	mutex_unlock(&apn->lock);
	return mask;
}

/* ---- open/release ------------------------------------------------------------ */

static int apn_open(struct inode *inode, struct file *filp)
{
	/* misc_open() holds misc_mtx, so remove() cannot have freed us yet. */
	struct apn_dev *apn = container_of(filp->private_data, struct apn_dev, misc);
	struct apn_file *f;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	f->apn = apn;
	f->mapping = filp->f_mapping;
	f->endpoint = -1;
	xa_init_flags(&f->mrs, XA_FLAGS_ALLOC1);
	apn_cm_file_init(f);
	kref_get(&apn->kref);

	mutex_lock(&apn->lock);
	list_add(&f->node, &apn->files);
	mutex_unlock(&apn->lock);
	filp->private_data = f;
	return 0;
}

/* Runs after the last mapping is gone (each holds the file), so none is left to revoke. */
static int apn_release(struct inode *inode, struct file *filp)
{
	struct apn_file *f = filp->private_data;
	struct apn_dev *apn = f->apn;

	/* kernel traffic it tunneled goes back to direct access first */
	apn_tunnel_release(f);
	mutex_lock(&apn->lock);
	if (!apn->dead) {
		/* the process may have died: its peers learn it from a CLOSE */
		apn_out_close_all(f);
		apn_file_teardown(f);
	}
	list_del(&f->node);
	mutex_unlock(&apn->lock);

	apn_cm_file_release(f);
	xa_destroy(&f->mrs);
	kfree(f);
	apn_dev_put(apn);
	return 0;
}

const struct file_operations apn_fops = {
	.owner = THIS_MODULE,
	.open = apn_open,
	.release = apn_release,
	.unlocked_ioctl = apn_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = apn_mmap,
	.poll = apn_poll,
	.llseek = noop_llseek,
};
