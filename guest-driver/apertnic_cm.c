// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apertnic kernel connection management (seed 004: "for an untrusted
 * application, kernel connection management would be performed"), and the
 * CLOSE a dying process's peers are sent.
 *
 * Untrusted endpoints have APN_EP_KERNEL_CM: the device hands their connection
 * messages to the OS queue instead of their event queues. The IRQ handler may
 * not sleep, so it queues them on a per-device ring; cm_work finds the file
 * that owns the endpoint under apn_dev.lock, acts, and posts the message onto
 * the endpoint's event queue (APN_REG_EV_POST_*; the device adds
 * APN_EV_F_POSTED):
 *   CONNECT    held in the file's backlog for APN_IOC_ACCEPT, then posted; a
 *              repeat of one held is dropped, a repeat of one accepted gets its
 *              ACCEPT again, and a full backlog is answered with ERROR
 *   ACCEPT     aims the outgoing aperture of the oldest APN_IOC_CONNECT to that
 *              host and port (else to that host), then posted (one that
 *              answers none is dropped)
 *   ERROR      drops the APN_IOC_CONNECTs pending to that host, then posted
 *   CLOSE, ALIVEACK  posted
 *   ALIVE      answered with ALIVEACK by the driver, not posted
 * A message is stamped with its OS queue position; one from before the
 * endpoint's current owner started it (a reused endpoint number) is dropped.
 * Messages are sent through the privileged command block acting for the
 * endpoint, and the nonces they offer are read from the driver's own incoming
 * table entries: the application never chooses one.
 */

#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "apertnic.h"
#include "uapi/apertnic.h"

/* The reason an ERROR carries when a listener's backlog is full. */
#define APN_CM_ERR_BACKLOG	ENOBUFS

/* An APN_IOC_CONNECT waiting for its ACCEPT. */
struct apn_cm_pending {
	struct list_head node;		/* in apn_cm_file.pending */
	u16 host;
	u16 port;
	u32 in_index;
	u32 out_index;
};

/* ---- device access (apn_dev.lock held: the registers are shared) ---------- */

static void apn_cmd_write(struct apn_dev *apn, unsigned int ureg, u32 val)
{
	writel(val, apn->regs + APN_REG_CMD_BLOCK + ureg);
}

static int apn_cmd_errno(u32 status)
{
	switch (status) {
	case APN_CMD_OK:
		return 0;
	case APN_CMD_ENOENT:
		return -ENOENT;
	case APN_CMD_EINVAL:
		return -EINVAL;
	case APN_CMD_ENOROUTE:
		return -EHOSTUNREACH;
	case APN_CMD_EDISABLED:
		return -ENETDOWN;
	default:
		return -EIO;
	}
}

/* Sends a connection message from endpoint @ep's port to <host:port>. */
static int apn_cm_send(struct apn_dev *apn, int ep, u8 type, u16 host, u16 port,
		       u32 in_index, u32 nonce, u32 info)
{
	lockdep_assert_held(&apn->lock);
	writel(ep, apn->regs + APN_REG_CMD_EP);
	apn_cmd_write(apn, APN_UREG_MSG_DEST_HOST, host);
	apn_cmd_write(apn, APN_UREG_MSG_DEST_PORT, port);
	apn_cmd_write(apn, APN_UREG_MSG_TYPE, type);
	apn_cmd_write(apn, APN_UREG_MSG_IN_INDEX, in_index);
	apn_cmd_write(apn, APN_UREG_MSG_NONCE, nonce);
	apn_cmd_write(apn, APN_UREG_MSG_INFO, info);
	apn_cmd_write(apn, APN_UREG_MSG_SEND, 1);
	return apn_cmd_errno(readl(apn->regs + APN_REG_CMD_BLOCK + APN_UREG_CMD_STATUS));
}

/* Adds @ev (type, flags, info, data as the device gave them) to endpoint @ep's queue. */
static void apn_cm_post(struct apn_dev *apn, int ep, const struct apn_event *ev)
{
	u64 data = le64_to_cpu(ev->data);

	lockdep_assert_held(&apn->lock);
	writel(ep, apn->regs + APN_REG_EV_POST_EP);
	writel(le32_to_cpu(ev->info), apn->regs + APN_REG_EV_POST_INFO);
	writel(lower_32_bits(data), apn->regs + APN_REG_EV_POST_DATA_LO);
	writel(upper_32_bits(data), apn->regs + APN_REG_EV_POST_DATA_HI);
	writel(ev->type | (u32)ev->flags << 8, apn->regs + APN_REG_EV_POST_TYPE);
}

static u32 apn_in_nonce(struct apn_dev *apn, u32 idx)
{
	return le32_to_cpu(READ_ONCE(apn->in_table[idx].nonce));
}

/* An outgoing entry whose destination was ever set (at creation or since). */
static bool apn_out_aimed(struct apn_dev *apn, u32 idx)
{
	const struct apn_out_entry *e = &apn->out_table[idx];

	return e->dest_host || e->dest_in_index || e->nonce;
}

/*
 * Aims outgoing aperture @idx, then drops the device's cached copy. The
 * application has not been told yet, so nothing is stored through it meanwhile.
 */
static void apn_cm_aim(struct apn_dev *apn, u32 idx, u16 host, u32 in_index, u32 nonce)
{
	struct apn_out_entry *e = &apn->out_table[idx];

	e->dest_host = cpu_to_le16(host);
	e->dest_in_index = cpu_to_le32(in_index);
	e->nonce = cpu_to_le32(nonce);
	dma_wmb();
	writel(APN_INVAL_OUT | idx, apn->regs + APN_REG_TABLE_INVAL);
}

/* ---- messages from the OS queue ------------------------------------------- */

static void apn_cm_peer_of(const struct apn_event *ev, struct apn_cm_peer *p)
{
	u64 data = le64_to_cpu(ev->data);

	p->in_index = le32_to_cpu(ev->info);
	p->nonce = (u32)data;
	p->host = (u16)(data >> 32);
	p->port = (u16)(data >> 48);
}

static bool apn_cm_peer_eq(const struct apn_cm_peer *a, const struct apn_cm_peer *b)
{
	return a->host == b->host && a->port == b->port && a->in_index == b->in_index &&
	       a->nonce == b->nonce;
}

/* The untrusted endpoint @ep's file, or NULL. */
static struct apn_file *apn_cm_file(struct apn_dev *apn, int ep)
{
	struct apn_file *f;

	list_for_each_entry(f, &apn->files, node)
		if (f->endpoint == ep)
			return f->trusted ? NULL : f;
	return NULL;
}

static void apn_cm_connect_msg(struct apn_file *f, const struct apn_cm_peer *p,
			       const struct apn_event *ev)
{
	struct apn_dev *apn = f->apn;
	struct apn_cm_file *cm = &f->cm;
	u32 i, n = min_t(u32, cm->naccepted, APN_CM_BACKLOG);

	for (i = 0; i < n; i++) {
		const struct apn_cm_accepted *a = &cm->accepted[i];

		if (!apn_cm_peer_eq(&a->peer, p))
			continue;
		/*
		 * Our ACCEPT was lost: say it again while that aperture lives. The
		 * nonce tells it from a new aperture at the same index, which was
		 * never offered to this peer.
		 */
		if (a->in_index < apn->num_in && apn->in_slots[a->in_index].owner == f &&
		    apn_in_nonce(apn, a->in_index) == a->nonce)
			apn_cm_send(apn, f->endpoint, APN_MSG_ACCEPT, p->host, p->port,
				    a->in_index, a->nonce, 0);
		return;
	}
	for (i = 0; i < cm->nbacklog; i++)
		if (apn_cm_peer_eq(&cm->backlog[i], p))
			return;		/* held (and posted) already */
	if (cm->nbacklog == APN_CM_BACKLOG) {
		apn_cm_send(apn, f->endpoint, APN_MSG_ERROR, p->host, p->port, 0, 0,
			    APN_CM_ERR_BACKLOG);
		return;
	}
	cm->backlog[cm->nbacklog++] = *p;
	apn_cm_post(apn, f->endpoint, ev);
}

static void apn_cm_accept_msg(struct apn_file *f, const struct apn_cm_peer *p,
			      const struct apn_event *ev)
{
	struct apn_dev *apn = f->apn;
	struct apn_cm_pending *pc, *match = NULL;

	/*
	 * The acceptor may answer from another port than the one dialled
	 * (seed 004's port'): the oldest CONNECT to that host and port, else
	 * the oldest to that host.
	 */
	list_for_each_entry(pc, &f->cm.pending, node) {
		if (pc->host != p->host)
			continue;
		if (pc->port == p->port) {
			match = pc;
			break;
		}
		if (!match)
			match = pc;
	}
	if (match) {
		apn_cm_aim(apn, match->out_index, p->host, p->in_index, p->nonce);
		list_del(&match->node);
		kfree(match);
		apn_cm_post(apn, f->endpoint, ev);
		return;
	}
	dev_dbg_ratelimited(&apn->pdev->dev, "endpoint %d: ACCEPT from host %u answers no CONNECT\n",
			    f->endpoint, p->host);
}

static void apn_cm_drop_host(struct apn_file *f, u16 host)
{
	struct apn_cm_pending *pc, *next;

	list_for_each_entry_safe(pc, next, &f->cm.pending, node) {
		if (pc->host != host)
			continue;
		list_del(&pc->node);
		kfree(pc);
	}
}

static void apn_cm_handle(struct apn_dev *apn, const struct apn_event *ev)
{
	int ep = le16_to_cpu(ev->endpoint);
	struct apn_cm_peer p;
	struct apn_file *f;

	f = apn_cm_file(apn, ep);
	if (!f) {
		dev_dbg_ratelimited(&apn->pdev->dev, "message %u for endpoint %d: no untrusted owner\n",
				    ev->type, ep);
		return;
	}
	apn_cm_peer_of(ev, &p);
	switch (ev->type) {
	case APN_EV_CONNECT:
		apn_cm_connect_msg(f, &p, ev);
		break;
	case APN_EV_ACCEPT:
		apn_cm_accept_msg(f, &p, ev);
		break;
	case APN_EV_ERROR_MSG:
		apn_cm_drop_host(f, p.host);
		apn_cm_post(apn, ep, ev);
		break;
	case APN_EV_ALIVE:
		/* echo what the prober sent, so it can match the answer */
		apn_cm_send(apn, ep, APN_MSG_ALIVEACK, p.host, p.port, p.in_index, p.nonce, 0);
		break;
	default:			/* CLOSE, ALIVEACK */
		apn_cm_post(apn, ep, ev);
		break;
	}
}

static void apn_cm_work(struct work_struct *work)
{
	struct apn_dev *apn = container_of(work, struct apn_dev, cm_work);
	struct apn_cm_msg msg;
	unsigned long flags;
	bool stale;
	int ep;

	for (;;) {
		spin_lock_irqsave(&apn->cm_ring_lock, flags);
		if (apn->cm_tail == apn->cm_head) {
			spin_unlock_irqrestore(&apn->cm_ring_lock, flags);
			return;
		}
		msg = apn->cm_ring[apn->cm_tail++ & (APN_CM_RING - 1)];
		spin_unlock_irqrestore(&apn->cm_ring_lock, flags);

		ep = le16_to_cpu(msg.ev.endpoint);
		mutex_lock(&apn->lock);
		stale = (s32)(msg.osq_pos - apn->cm_ep_from[ep]) < 0;
		if (stale)
			dev_dbg_ratelimited(&apn->pdev->dev, "message %u for a previous owner of endpoint %d dropped\n",
					    msg.ev.type, ep);
		else if (!apn->dead)
			apn_cm_handle(apn, &msg.ev);
		mutex_unlock(&apn->lock);
	}
}

/* IRQ handler (hard IRQ context): hands a connection message to cm_work. */
void apn_cm_queue(struct apn_dev *apn, const struct apn_event *ev, u32 osq_pos)
{
	bool queued = false;

	spin_lock(&apn->cm_ring_lock);
	if (apn->cm_head - apn->cm_tail < APN_CM_RING) {
		struct apn_cm_msg *msg = &apn->cm_ring[apn->cm_head++ & (APN_CM_RING - 1)];

		msg->ev = *ev;
		msg->osq_pos = osq_pos;
		queued = true;
	}
	spin_unlock(&apn->cm_ring_lock);
	if (queued) {
		schedule_work(&apn->cm_work);
	} else {
		/* like a datagram lost on the wire: the sender retries */
		atomic_long_inc(&apn->cm_dropped);
		dev_warn_ratelimited(&apn->pdev->dev, "connection message ring full, message %u for endpoint %u dropped\n",
				     ev->type, le16_to_cpu(ev->endpoint));
	}
}

void apn_cm_init(struct apn_dev *apn)
{
	BUILD_BUG_ON(APN_CM_BACKLOG != APN_ACCEPT_BACKLOG);
	BUILD_BUG_ON(APN_CM_RING & (APN_CM_RING - 1));
	spin_lock_init(&apn->cm_ring_lock);
	INIT_WORK(&apn->cm_work, apn_cm_work);
	atomic_long_set(&apn->cm_dropped, 0);
}

/* ---- per file ----------------------------------------------------------------- */

void apn_cm_file_init(struct apn_file *f)
{
	INIT_LIST_HEAD(&f->cm.pending);
}

/* The file is gone from apn_dev.files: nobody else looks at its state. */
void apn_cm_file_release(struct apn_file *f)
{
	struct apn_cm_pending *pc, *next;

	list_for_each_entry_safe(pc, next, &f->cm.pending, node) {
		list_del(&pc->node);
		kfree(pc);
	}
}

static struct apn_cm_pending *apn_cm_pending_of(struct apn_file *f, u32 out_index)
{
	struct apn_cm_pending *pc;

	list_for_each_entry(pc, &f->cm.pending, node)
		if (pc->out_index == out_index)
			return pc;
	return NULL;
}

/* Outgoing aperture @out_index of @f is being destroyed: its CONNECT is void. Lock held. */
void apn_cm_out_gone(struct apn_file *f, u32 out_index)
{
	struct apn_cm_pending *pc = apn_cm_pending_of(f, out_index);

	if (pc) {
		list_del(&pc->node);
		kfree(pc);
	}
}

/*
 * Close on death: before @f's outgoing apertures are invalidated, each one
 * aimed somewhere sends its peer a CLOSE segment (after the stores gathered on
 * it), which reaches the peer's endpoint as APN_EV_CLOSE with APN_EV_F_APERTURE.
 * Lock held, device alive.
 */
void apn_out_close_all(struct apn_file *f)
{
	struct apn_dev *apn = f->apn;
	u32 i;

	for (i = 0; i < apn->num_out; i++) {
		if (apn->out_slots[i].owner != f ||
		    !(le32_to_cpu(READ_ONCE(apn->out_table[i].flags)) & APN_ENTRY_VALID) ||
		    !apn_out_aimed(apn, i))
			continue;
		writel(i, apn->regs + APN_REG_OUT_CLOSE);
	}
}

/* ---- ioctls ------------------------------------------------------------------- */

/* Checks shared by both ioctls. Lock held. */
static int apn_cm_check(struct apn_file *f, u32 in_index, u32 out_index)
{
	struct apn_dev *apn = f->apn;

	if (apn->dead)
		return -ENODEV;
	if (f->endpoint < 0 || f->trusted)
		return -EINVAL;
	if (in_index >= apn->num_in || apn->in_slots[in_index].owner != f ||
	    out_index >= apn->num_out || apn->out_slots[out_index].owner != f)
		return -ENOENT;
	return 0;
}

int apn_cm_ioc_connect(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_cm_pending *pc, *old = NULL;
	struct apn_conn_connect req;
	int ret;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (req.reserved)
		return -EINVAL;
	pc = kzalloc(sizeof(*pc), GFP_KERNEL);
	if (!pc)
		return -ENOMEM;

	mutex_lock(&apn->lock);
	ret = apn_cm_check(f, req.in_index, req.out_index);
	if (!ret) {
		/* the same CONNECT again is a retry; anything else on this aperture is not */
		old = apn_cm_pending_of(f, req.out_index);
		if (old ? old->host != req.dest_host || old->port != req.dest_port ||
			  old->in_index != req.in_index :
			  apn_out_aimed(apn, req.out_index))
			ret = -EBUSY;
	}
	if (!ret)
		ret = apn_cm_send(apn, f->endpoint, APN_MSG_CONNECT, req.dest_host, req.dest_port,
				  req.in_index, apn_in_nonce(apn, req.in_index), 0);
	if (!ret && !old) {
		pc->host = req.dest_host;
		pc->port = req.dest_port;
		pc->in_index = req.in_index;
		pc->out_index = req.out_index;
		list_add_tail(&pc->node, &f->cm.pending);
		pc = NULL;
	}
	mutex_unlock(&apn->lock);
	kfree(pc);
	return ret;
}

/* The backlog slot @req takes: the oldest, or the one from its peer. */
static int apn_cm_backlog_find(struct apn_file *f, const struct apn_conn_accept *req)
{
	u32 i;

	for (i = 0; i < f->cm.nbacklog; i++)
		if (!(req->flags & APN_ACCEPT_PEER) ||
		    (f->cm.backlog[i].host == req->peer_host &&
		     f->cm.backlog[i].port == req->peer_port))
			return i;
	return -1;
}

int apn_cm_ioc_accept(struct apn_file *f, void __user *uarg)
{
	struct apn_dev *apn = f->apn;
	struct apn_cm_file *cm = &f->cm;
	struct apn_conn_accept req;
	struct apn_cm_accepted *a;
	struct apn_cm_peer p;
	int ret, i = -1;
	u32 nonce;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if ((req.flags & ~APN_ACCEPT_PEER) || memchr_inv(req.reserved, 0, sizeof(req.reserved)))
		return -EINVAL;

	mutex_lock(&apn->lock);
	ret = apn_cm_check(f, req.in_index, req.out_index);
	if (!ret && (apn_cm_pending_of(f, req.out_index) || apn_out_aimed(apn, req.out_index)))
		ret = -EBUSY;
	if (!ret) {
		i = apn_cm_backlog_find(f, &req);
		if (i < 0)
			ret = -EAGAIN;
	}
	if (!ret) {
		p = cm->backlog[i];
		nonce = apn_in_nonce(apn, req.in_index);
		/* sent first: if it cannot go, the CONNECT stays held and nothing changes */
		ret = apn_cm_send(apn, f->endpoint, APN_MSG_ACCEPT, p.host, p.port, req.in_index,
				  nonce, 0);
	}
	if (!ret) {
		apn_cm_aim(apn, req.out_index, p.host, p.in_index, p.nonce);
		cm->nbacklog--;
		memmove(&cm->backlog[i], &cm->backlog[i + 1],
			(cm->nbacklog - i) * sizeof(cm->backlog[0]));
		a = &cm->accepted[cm->naccepted++ % APN_CM_BACKLOG];
		a->peer = p;
		a->in_index = req.in_index;
		a->nonce = nonce;
		req.peer_host = p.host;
		req.peer_port = p.port;
		req.peer_in_index = p.in_index;
	}
	mutex_unlock(&apn->lock);
	if (ret)
		return ret;
	return copy_to_user(uarg, &req, sizeof(req)) ? -EFAULT : 0;
}
