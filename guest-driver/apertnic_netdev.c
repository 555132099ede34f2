// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apertnic: the kernel's own Ethernet interface (seed 002).
 *
 * The NIC's port is shared: CI frames and datagrams for ports bound to
 * endpoints go to user-level endpoints, every other frame to the kernel's RX
 * ring, and the kernel sends through its TX ring. This file makes those rings
 * an ordinary net_device ("apnN"), so the kernel's IP stack keeps working
 * whatever user-level processes do; none of it depends on /dev/apertnicN.
 *
 * Rings: APN_RX_DESCS and APN_TX_DESCS 16-byte descriptors in coherent memory;
 * pointers run free (slot = ptr & (size - 1)). RX buffers are kmalloc()ed once
 * at open, large enough for the device's MTU, and stay DMA-mapped until stop:
 * a received frame is copied into a fresh skb and the buffer is posted again
 * at once, so a failed allocation drops one frame and never leaves a hole in
 * the ring. TX maps the (linear) skb itself. One NAPI context on vector
 * APN_VEC_RINGS cleans TX and receives RX; its IRQ handler masks RING_IRQ,
 * and the poll unmasks it when done.
 *
 * While a process tunnels apnN's traffic (apertnic_tunnel.c, seed 002's
 * user-space tunneled access), transmit hands the stack's frames to it, and
 * the tunnel sends the frames the process marks for the wire through the TX
 * ring here, with the queue's xmit lock held.
 */

#include <linux/dma-mapping.h>
#include <linux/etherdevice.h>
#include <linux/ethtool.h>
#include <linux/if_vlan.h>
#include <linux/interrupt.h>
#include <linux/netdevice.h>
#include <linux/slab.h>
#include <linux/u64_stats_sync.h>

#include "apertnic.h"

#define APN_RX_DESCS		256
#define APN_TX_DESCS		256
#define APN_RING_MAX_DESCS	4096
/* Wake a stopped queue only when this many descriptors are free again. */
#define APN_TX_WAKE_THRESH	(APN_TX_DESCS / 4)
#define APN_RING_IRQ_ALL	(APN_RING_IRQ_RX | APN_RING_IRQ_TX)

static_assert((APN_RX_DESCS & (APN_RX_DESCS - 1)) == 0 && APN_RX_DESCS <= APN_RING_MAX_DESCS);
static_assert((APN_TX_DESCS & (APN_TX_DESCS - 1)) == 0 && APN_TX_DESCS <= APN_RING_MAX_DESCS);

struct apn_rx_buf {
	void *data;
	dma_addr_t dma;
};

struct apn_tx_buf {
	struct sk_buff *skb;		/* NULL: slot free */
	dma_addr_t dma;
	u32 len;
};

/*
 * Driver statistics. napi_* are written only by the NAPI poll, xmit_* only by
 * ndo_start_xmit (under the queue's xmit lock), irq_* only by the IRQ handler
 * (one vector, never reentered): one writer each, so u64_stats is enough.
 */
struct apn_napi_stats {
	struct u64_stats_sync syncp;
	u64_stats_t rx_packets;
	u64_stats_t rx_bytes;
	u64_stats_t rx_errors;		/* APN_DESC_ERROR: frame larger than the buffer */
	u64_stats_t rx_dropped;		/* no skb */
	u64_stats_t tx_packets;
	u64_stats_t tx_bytes;
	u64_stats_t tx_errors;		/* APN_DESC_ERROR: the device refused the frame */
	u64_stats_t polls;
};

struct apn_xmit_stats {
	struct u64_stats_sync syncp;
	u64_stats_t tx_dropped;		/* too long, or could not be mapped */
	u64_stats_t tx_stops;		/* queue stopped: ring full */
};

struct apn_netdev {
	struct apn_dev *apn;
	struct net_device *ndev;
	struct napi_struct napi;
	void __iomem *regs;
	int irq;
	u32 buf_len;			/* RX buffer bytes */

	struct apn_ring_desc *rx_desc;
	dma_addr_t rx_desc_dma;
	struct apn_rx_buf *rx_buf;
	u32 rx_next;			/* next descriptor to look at (free running) */

	struct apn_ring_desc *tx_desc;
	dma_addr_t tx_desc_dma;
	struct apn_tx_buf *tx_buf;
	u32 tx_tail;			/* next descriptor to fill (xmit) */
	u32 tx_clean;			/* oldest descriptor not yet done (NAPI) */
	/* The rings exist (open to stop): what the tunnel checks under the xmit lock. */
	bool tx_ready;

	struct apn_napi_stats napi_stats;
	struct apn_xmit_stats xmit_stats;
	struct u64_stats_sync irq_syncp;
	u64_stats_t irqs;
};

/* ---- rings ------------------------------------------------------------------ */

static void apn_ring_write_addr(struct apn_netdev *nd, unsigned int lo_reg, dma_addr_t addr)
{
	writel(lower_32_bits(addr), nd->regs + lo_reg);
	writel(upper_32_bits(addr), nd->regs + lo_reg + 4);
}

/* Turns the rings and their interrupt off; the device no longer touches them. */
static void apn_rings_stop_device(struct apn_netdev *nd)
{
	writel(0, nd->regs + APN_REG_RING_IRQ);
	writel(0, nd->regs + APN_REG_RX_RING_SIZE);
	writel(0, nd->regs + APN_REG_TX_RING_SIZE);
	/* Flush the posted writes before the memory behind the rings is freed. */
	readl(nd->regs + APN_REG_STATUS);
}

static void apn_free_rx(struct apn_netdev *nd)
{
	struct device *dev = &nd->apn->pdev->dev;
	u32 i;

	if (nd->rx_buf) {
		for (i = 0; i < APN_RX_DESCS; i++) {
			struct apn_rx_buf *b = &nd->rx_buf[i];

			if (!b->data)
				continue;
			dma_unmap_single(dev, b->dma, nd->buf_len, DMA_FROM_DEVICE);
			kfree(b->data);
		}
		kfree(nd->rx_buf);
		nd->rx_buf = NULL;
	}
	if (nd->rx_desc) {
		dma_free_coherent(dev, APN_RX_DESCS * sizeof(*nd->rx_desc), nd->rx_desc,
				  nd->rx_desc_dma);
		nd->rx_desc = NULL;
	}
}

/* Frees what the device did not send; the rings are off. */
static void apn_free_tx(struct apn_netdev *nd)
{
	struct device *dev = &nd->apn->pdev->dev;
	u32 i;

	if (nd->tx_buf) {
		for (i = 0; i < APN_TX_DESCS; i++) {
			struct apn_tx_buf *b = &nd->tx_buf[i];

			if (!b->skb)
				continue;
			dma_unmap_single(dev, b->dma, b->len, DMA_TO_DEVICE);
			dev_kfree_skb_any(b->skb);
		}
		kfree(nd->tx_buf);
		nd->tx_buf = NULL;
	}
	if (nd->tx_desc) {
		dma_free_coherent(dev, APN_TX_DESCS * sizeof(*nd->tx_desc), nd->tx_desc,
				  nd->tx_desc_dma);
		nd->tx_desc = NULL;
	}
	netdev_reset_queue(nd->ndev);
}

static int apn_alloc_rings(struct apn_netdev *nd)
{
	struct device *dev = &nd->apn->pdev->dev;
	u32 i;

	nd->rx_desc = dma_alloc_coherent(dev, APN_RX_DESCS * sizeof(*nd->rx_desc),
					 &nd->rx_desc_dma, GFP_KERNEL);
	nd->tx_desc = dma_alloc_coherent(dev, APN_TX_DESCS * sizeof(*nd->tx_desc),
					 &nd->tx_desc_dma, GFP_KERNEL);
	nd->rx_buf = kcalloc(APN_RX_DESCS, sizeof(*nd->rx_buf), GFP_KERNEL);
	nd->tx_buf = kcalloc(APN_TX_DESCS, sizeof(*nd->tx_buf), GFP_KERNEL);
	if (!nd->rx_desc || !nd->tx_desc || !nd->rx_buf || !nd->tx_buf)
		return -ENOMEM;

	for (i = 0; i < APN_RX_DESCS; i++) {
		struct apn_rx_buf *b = &nd->rx_buf[i];
		void *data = kmalloc(nd->buf_len, GFP_KERNEL);

		if (!data)
			return -ENOMEM;
		b->dma = dma_map_single(dev, data, nd->buf_len, DMA_FROM_DEVICE);
		if (dma_mapping_error(dev, b->dma)) {
			kfree(data);
			return -ENOMEM;
		}
		b->data = data;
		nd->rx_desc[i].addr = cpu_to_le64(b->dma);
		nd->rx_desc[i].len = cpu_to_le16(nd->buf_len);
	}
	return 0;
}

static void apn_free_rings(struct apn_netdev *nd)
{
	apn_free_rx(nd);
	apn_free_tx(nd);
}

/*
 * Gives the device the rings, RX fully posted (TAIL = HEAD + size is allowed:
 * the host owns [HEAD, TAIL)). Writing a ring's size sets its pointers to 0;
 * reading the heads back keeps us right either way.
 */
static void apn_rings_start_device(struct apn_netdev *nd)
{
	apn_ring_write_addr(nd, APN_REG_RX_RING_LO, nd->rx_desc_dma);
	writel(APN_RX_DESCS, nd->regs + APN_REG_RX_RING_SIZE);
	apn_ring_write_addr(nd, APN_REG_TX_RING_LO, nd->tx_desc_dma);
	writel(APN_TX_DESCS, nd->regs + APN_REG_TX_RING_SIZE);

	nd->rx_next = readl(nd->regs + APN_REG_RX_HEAD);
	nd->tx_clean = readl(nd->regs + APN_REG_TX_HEAD);
	nd->tx_tail = nd->tx_clean;
	writel(nd->tx_tail, nd->regs + APN_REG_TX_TAIL);
	/* Every buffer posted: the device may fill descriptors up to rx_next + size. */
	writel(nd->rx_next + APN_RX_DESCS, nd->regs + APN_REG_RX_TAIL);
	writel(APN_RING_IRQ_ALL, nd->regs + APN_REG_RING_IRQ);
}

static u32 apn_tx_free(const struct apn_netdev *nd)
{
	return APN_TX_DESCS - (READ_ONCE(nd->tx_tail) - READ_ONCE(nd->tx_clean));
}

/* ---- NAPI ------------------------------------------------------------------- */

/* Retires the descriptors the device has sent. */
static void apn_clean_tx(struct apn_netdev *nd, int budget)
{
	struct device *dev = &nd->apn->pdev->dev;
	/* Pairs with the release in xmit: the slots before tail are filled. */
	u32 clean = nd->tx_clean, tail = smp_load_acquire(&nd->tx_tail);
	unsigned int done = 0, pkts = 0, bytes = 0, errors = 0, bql_bytes = 0;

	while (clean != tail) {
		struct apn_ring_desc *d = &nd->tx_desc[clean & (APN_TX_DESCS - 1)];
		struct apn_tx_buf *b = &nd->tx_buf[clean & (APN_TX_DESCS - 1)];
		u16 flags = le16_to_cpu(READ_ONCE(d->flags));

		if (!(flags & APN_DESC_DONE))
			break;
		dma_unmap_single(dev, b->dma, b->len, DMA_TO_DEVICE);
		if (unlikely(flags & APN_DESC_ERROR)) {
			errors++;
		} else {
			pkts++;
			bytes += b->len;
		}
		done++;
		bql_bytes += b->len;
		napi_consume_skb(b->skb, budget);
		b->skb = NULL;
		clean++;
	}
	if (!done)
		return;

	u64_stats_update_begin(&nd->napi_stats.syncp);
	u64_stats_add(&nd->napi_stats.tx_packets, pkts);
	u64_stats_add(&nd->napi_stats.tx_bytes, bytes);
	u64_stats_add(&nd->napi_stats.tx_errors, errors);
	u64_stats_update_end(&nd->napi_stats.syncp);
	netdev_completed_queue(nd->ndev, done, bql_bytes);

	/* Frees the slots for xmit, which reads tx_clean without a lock. */
	smp_store_release(&nd->tx_clean, clean);
	/*
	 * The new tx_clean must be visible before we look at the queue state:
	 * pairs with the smp_mb() in xmit after it stops the queue, so either
	 * it sees the freed slots or we see the queue stopped.
	 */
	smp_mb();
	if (unlikely(netif_queue_stopped(nd->ndev)) && apn_tx_free(nd) >= APN_TX_WAKE_THRESH)
		netif_wake_queue(nd->ndev);
}

/* Receives up to budget frames; every descriptor looked at is posted again. */
static int apn_receive(struct apn_netdev *nd, int budget)
{
	struct device *dev = &nd->apn->pdev->dev;
	unsigned int pkts = 0, bytes = 0, errors = 0, dropped = 0;
	u32 next = nd->rx_next;
	int done = 0;

	while (done < budget) {
		u32 slot = next & (APN_RX_DESCS - 1);
		struct apn_ring_desc *d = &nd->rx_desc[slot];
		struct apn_rx_buf *b = &nd->rx_buf[slot];
		u16 flags = le16_to_cpu(READ_ONCE(d->flags));
		unsigned int len;
		struct sk_buff *skb;

		if (!(flags & APN_DESC_DONE))
			break;
		/* The device writes the frame and the length before DONE. */
		dma_rmb();
		len = le16_to_cpu(d->len);
		done++;
		next++;

		if (unlikely(flags & APN_DESC_ERROR || len < ETH_HLEN || len > nd->buf_len)) {
			errors++;
			goto repost;
		}
		skb = napi_alloc_skb(&nd->napi, len);
		if (unlikely(!skb)) {
			dropped++;
			goto repost;
		}
		dma_sync_single_for_cpu(dev, b->dma, len, DMA_FROM_DEVICE);
		skb_put_data(skb, b->data, len);
		dma_sync_single_for_device(dev, b->dma, len, DMA_FROM_DEVICE);
		skb->protocol = eth_type_trans(skb, nd->ndev);
		pkts++;
		bytes += len;
		napi_gro_receive(&nd->napi, skb);
repost:
		d->len = cpu_to_le16(nd->buf_len);
		d->flags = 0;
	}
	if (!done)
		return 0;

	nd->rx_next = next;
	/* writel() orders the descriptor resets before the doorbell. */
	writel(next + APN_RX_DESCS, nd->regs + APN_REG_RX_TAIL);

	u64_stats_update_begin(&nd->napi_stats.syncp);
	u64_stats_add(&nd->napi_stats.rx_packets, pkts);
	u64_stats_add(&nd->napi_stats.rx_bytes, bytes);
	u64_stats_add(&nd->napi_stats.rx_errors, errors);
	u64_stats_add(&nd->napi_stats.rx_dropped, dropped);
	u64_stats_update_end(&nd->napi_stats.syncp);
	return done;
}

/* Work the device has finished that the poll has not seen yet. */
static bool apn_rings_pending(struct apn_netdev *nd)
{
	const struct apn_ring_desc *rx = &nd->rx_desc[nd->rx_next & (APN_RX_DESCS - 1)];
	const struct apn_ring_desc *tx = &nd->tx_desc[nd->tx_clean & (APN_TX_DESCS - 1)];

	if (le16_to_cpu(READ_ONCE(rx->flags)) & APN_DESC_DONE)
		return true;
	return nd->tx_clean != READ_ONCE(nd->tx_tail) &&
	       le16_to_cpu(READ_ONCE(tx->flags)) & APN_DESC_DONE;
}

static int apn_poll(struct napi_struct *napi, int budget)
{
	struct apn_netdev *nd = container_of(napi, struct apn_netdev, napi);
	int done;

	u64_stats_update_begin(&nd->napi_stats.syncp);
	u64_stats_inc(&nd->napi_stats.polls);
	u64_stats_update_end(&nd->napi_stats.syncp);

	apn_clean_tx(nd, budget);
	done = apn_receive(nd, budget);
	if (done >= budget)
		return budget;

	if (napi_complete_done(napi, done)) {
		writel(APN_RING_IRQ_ALL, nd->regs + APN_REG_RING_IRQ);
		/*
		 * A descriptor completed while the interrupt was masked raised
		 * nothing: look once more now that it is unmasked.
		 */
		if (apn_rings_pending(nd) && napi_schedule_prep(napi)) {
			writel(0, nd->regs + APN_REG_RING_IRQ);
			__napi_schedule(napi);
		}
	}
	return done;
}

static irqreturn_t apn_ring_irq(int irq, void *data)
{
	struct apn_netdev *nd = data;

	u64_stats_update_begin(&nd->irq_syncp);
	u64_stats_inc(&nd->irqs);
	u64_stats_update_end(&nd->irq_syncp);
	if (napi_schedule_prep(&nd->napi)) {
		writel(0, nd->regs + APN_REG_RING_IRQ);
		__napi_schedule(&nd->napi);
	}
	return IRQ_HANDLED;
}

/* ---- net_device_ops ------------------------------------------------------- */

static void apn_xmit_drop(struct apn_netdev *nd, struct sk_buff *skb)
{
	dev_kfree_skb_any(skb);
	u64_stats_update_begin(&nd->xmit_stats.syncp);
	u64_stats_inc(&nd->xmit_stats.tx_dropped);
	u64_stats_update_end(&nd->xmit_stats.syncp);
}

/*
 * Puts skb on the TX ring (direct access). The queue's xmit lock is held: by
 * the stack, or by the tunnel (apertnic_tunnel.c) sending a process's frames
 * to the wire, which passes more = true and rings apn_netdev_tx_doorbell()
 * after its batch.
 */
netdev_tx_t apn_netdev_xmit_direct(struct sk_buff *skb, struct net_device *ndev, bool more)
{
	struct apn_netdev *nd = netdev_priv(ndev);
	struct device *dev = &nd->apn->pdev->dev;
	u32 slot = nd->tx_tail & (APN_TX_DESCS - 1);
	struct apn_ring_desc *d = &nd->tx_desc[slot];
	struct apn_tx_buf *b = &nd->tx_buf[slot];
	dma_addr_t dma;

	if (unlikely(!apn_tx_free(nd))) {
		/* Never happens: the queue is stopped while the ring is full. */
		netif_stop_queue(ndev);
		return NETDEV_TX_BUSY;
	}
	/* Padding to the Ethernet minimum frees the skb on failure. */
	if (eth_skb_pad(skb)) {
		u64_stats_update_begin(&nd->xmit_stats.syncp);
		u64_stats_inc(&nd->xmit_stats.tx_dropped);
		u64_stats_update_end(&nd->xmit_stats.syncp);
		return NETDEV_TX_OK;
	}
	/*
	 * No NETIF_F_SG: the skb is linear. The device sends at most its MTU
	 * after the Ethernet header: drop longer frames (e.g. from raw sockets).
	 */
	if (unlikely(skb->len > nd->apn->mtu + ETH_HLEN)) {
		apn_xmit_drop(nd, skb);
		return NETDEV_TX_OK;
	}
	dma = dma_map_single(dev, skb->data, skb->len, DMA_TO_DEVICE);
	if (unlikely(dma_mapping_error(dev, dma))) {
		apn_xmit_drop(nd, skb);
		return NETDEV_TX_OK;
	}
	b->skb = skb;
	b->dma = dma;
	b->len = skb->len;
	d->addr = cpu_to_le64(dma);
	d->len = cpu_to_le16(skb->len);
	d->flags = 0;
	d->reserved = 0;
	netdev_sent_queue(ndev, skb->len);
	skb_tx_timestamp(skb);
	/* After the slot is filled: the cleaner reads tx_tail locklessly. */
	smp_store_release(&nd->tx_tail, nd->tx_tail + 1);

	if (unlikely(!apn_tx_free(nd))) {
		netif_stop_queue(ndev);
		u64_stats_update_begin(&nd->xmit_stats.syncp);
		u64_stats_inc(&nd->xmit_stats.tx_stops);
		u64_stats_update_end(&nd->xmit_stats.syncp);
		/* Pairs with the barrier in apn_clean_tx(): it may have freed slots meanwhile. */
		smp_mb();
		if (apn_tx_free(nd) >= APN_TX_WAKE_THRESH)
			netif_start_queue(ndev);
	}
	/* writel() orders the descriptor before the doorbell. */
	if (!more || netif_queue_stopped(ndev))
		writel(nd->tx_tail, nd->regs + APN_REG_TX_TAIL);
	return NETDEV_TX_OK;
}

/* Hands the device what apn_netdev_xmit_direct() queued; xmit lock held. */
void apn_netdev_tx_doorbell(struct net_device *ndev)
{
	struct apn_netdev *nd = netdev_priv(ndev);

	writel(nd->tx_tail, nd->regs + APN_REG_TX_TAIL);
}

/* Whether the TX ring may be used: call with the xmit lock held. */
bool apn_netdev_tx_ready(struct net_device *ndev)
{
	struct apn_netdev *nd = netdev_priv(ndev);

	/* Pairs with the release in ndo_open: the rings are set up. */
	return smp_load_acquire(&nd->tx_ready);
}

static netdev_tx_t apn_start_xmit(struct sk_buff *skb, struct net_device *ndev)
{
	struct apn_netdev *nd = netdev_priv(ndev);
	netdev_tx_t ret;

	/* While a process tunnels our traffic, the frame is its to handle. */
	if (rcu_access_pointer(nd->apn->tun.active) && apn_tunnel_xmit(nd->apn, skb, &ret))
		return ret;
	return apn_netdev_xmit_direct(skb, ndev, netdev_xmit_more());
}

static void apn_set_carrier(struct net_device *ndev, bool up)
{
	if (up)
		netif_carrier_on(ndev);
	else
		netif_carrier_off(ndev);
}

static int apn_ndo_open(struct net_device *ndev)
{
	struct apn_netdev *nd = netdev_priv(ndev);
	int ret;

	ret = apn_alloc_rings(nd);
	if (ret)
		goto err_free;
	ret = request_irq(nd->irq, apn_ring_irq, 0, ndev->name, nd);
	if (ret)
		goto err_free;
	napi_enable(&nd->napi);
	apn_rings_start_device(nd);
	/* Pairs with apn_netdev_tx_ready(): the rings are set up before. */
	smp_store_release(&nd->tx_ready, true);
	apn_set_carrier(ndev, readl(nd->regs + APN_REG_STATUS) & APN_STATUS_LINK_UP);
	netif_start_queue(ndev);
	return 0;

err_free:
	apn_free_rings(nd);
	return ret;
}

static int apn_ndo_stop(struct net_device *ndev)
{
	struct apn_netdev *nd = netdev_priv(ndev);

	/* The tunnel sees this under the xmit lock, which netif_tx_disable() takes. */
	WRITE_ONCE(nd->tx_ready, false);
	netif_tx_disable(ndev);
	apn_rings_stop_device(nd);
	free_irq(nd->irq, nd);
	napi_disable(&nd->napi);
	apn_free_rings(nd);
	return 0;
}

static void apn_get_stats64(struct net_device *ndev, struct rtnl_link_stats64 *s)
{
	struct apn_netdev *nd = netdev_priv(ndev);
	const struct apn_napi_stats *ns = &nd->napi_stats;
	const struct apn_xmit_stats *xs = &nd->xmit_stats;
	unsigned int start;

	do {
		start = u64_stats_fetch_begin(&ns->syncp);
		s->rx_packets = u64_stats_read(&ns->rx_packets);
		s->rx_bytes = u64_stats_read(&ns->rx_bytes);
		s->rx_errors = u64_stats_read(&ns->rx_errors);
		s->rx_length_errors = s->rx_errors;
		s->rx_dropped = u64_stats_read(&ns->rx_dropped);
		s->tx_packets = u64_stats_read(&ns->tx_packets);
		s->tx_bytes = u64_stats_read(&ns->tx_bytes);
		s->tx_errors = u64_stats_read(&ns->tx_errors);
	} while (u64_stats_fetch_retry(&ns->syncp, start));
	do {
		start = u64_stats_fetch_begin(&xs->syncp);
		s->tx_dropped = u64_stats_read(&xs->tx_dropped);
	} while (u64_stats_fetch_retry(&xs->syncp, start));
}

static void apn_tx_timeout(struct net_device *ndev, unsigned int txqueue)
{
	struct apn_netdev *nd = netdev_priv(ndev);

	netdev_warn(ndev, "TX timeout: tail %u, cleaned %u, device head %u\n",
		    READ_ONCE(nd->tx_tail), READ_ONCE(nd->tx_clean),
		    readl(nd->regs + APN_REG_TX_HEAD));
}

static const struct net_device_ops apn_netdev_ops = {
	.ndo_open		= apn_ndo_open,
	.ndo_stop		= apn_ndo_stop,
	.ndo_start_xmit		= apn_start_xmit,
	.ndo_get_stats64	= apn_get_stats64,
	.ndo_tx_timeout		= apn_tx_timeout,
	.ndo_validate_addr	= eth_validate_addr,
};

/* ---- ethtool ---------------------------------------------------------------- */

#define APN_COUNTER_NAME(cid, cname) cname,
static const char * const apn_counter_names[] = {
	APN_COUNTER_LIST(APN_COUNTER_NAME)
};

#undef APN_COUNTER_NAME

/* Driver ring statistics, after the device's counters in `ethtool -S`. */
static const char * const apn_ring_stat_names[] = {
	"ring_rx_packets", "ring_rx_bytes", "ring_rx_errors", "ring_rx_dropped",
	"ring_tx_packets", "ring_tx_bytes", "ring_tx_errors", "ring_tx_dropped", "ring_tx_stops",
	"ring_polls", "ring_irqs",
};

/* Then the tunnel's (apertnic_tunnel.c). */
#define APN_NUM_STATS (ARRAY_SIZE(apn_counter_names) + ARRAY_SIZE(apn_ring_stat_names) + \
		       apn_tunnel_stat_count())

static void apn_get_drvinfo(struct net_device *ndev, struct ethtool_drvinfo *info)
{
	struct apn_netdev *nd = netdev_priv(ndev);

	strscpy(info->driver, APN_DRV_NAME, sizeof(info->driver));
	strscpy(info->bus_info, pci_name(nd->apn->pdev), sizeof(info->bus_info));
	snprintf(info->fw_version, sizeof(info->fw_version), "spec %u.%u",
		 nd->apn->spec_version >> 16, nd->apn->spec_version & 0xffff);
}

static u32 apn_get_link(struct net_device *ndev)
{
	struct apn_netdev *nd = netdev_priv(ndev);

	return !!(readl(nd->regs + APN_REG_STATUS) & APN_STATUS_LINK_UP);
}

static void apn_get_ringparam(struct net_device *ndev, struct ethtool_ringparam *ring,
			      struct kernel_ethtool_ringparam *kring,
			      struct netlink_ext_ack *extack)
{
	ring->rx_max_pending = APN_RING_MAX_DESCS;
	ring->tx_max_pending = APN_RING_MAX_DESCS;
	ring->rx_pending = APN_RX_DESCS;
	ring->tx_pending = APN_TX_DESCS;
}

static int apn_get_sset_count(struct net_device *ndev, int sset)
{
	return sset == ETH_SS_STATS ? APN_NUM_STATS : -EOPNOTSUPP;
}

static void apn_get_strings(struct net_device *ndev, u32 sset, u8 *data)
{
	unsigned int i;

	if (sset != ETH_SS_STATS)
		return;
	for (i = 0; i < ARRAY_SIZE(apn_counter_names); i++)
		ethtool_sprintf(&data, "%s", apn_counter_names[i]);
	for (i = 0; i < ARRAY_SIZE(apn_ring_stat_names); i++)
		ethtool_sprintf(&data, "%s", apn_ring_stat_names[i]);
	apn_tunnel_stat_strings(&data);
}

static void apn_get_ethtool_stats(struct net_device *ndev, struct ethtool_stats *stats,
				  u64 *data)
{
	struct apn_netdev *nd = netdev_priv(ndev);
	const struct apn_napi_stats *ns = &nd->napi_stats;
	const struct apn_xmit_stats *xs = &nd->xmit_stats;
	unsigned int i, start;
	u64 *p;

	for (i = 0; i < ARRAY_SIZE(apn_counter_names); i++)
		*data++ = apn_read_counter(nd->apn, i);
	/* In the order of apn_ring_stat_names. */
	do {
		p = data;
		start = u64_stats_fetch_begin(&ns->syncp);
		*p++ = u64_stats_read(&ns->rx_packets);
		*p++ = u64_stats_read(&ns->rx_bytes);
		*p++ = u64_stats_read(&ns->rx_errors);
		*p++ = u64_stats_read(&ns->rx_dropped);
		*p++ = u64_stats_read(&ns->tx_packets);
		*p++ = u64_stats_read(&ns->tx_bytes);
		*p++ = u64_stats_read(&ns->tx_errors);
	} while (u64_stats_fetch_retry(&ns->syncp, start));
	data = p;
	do {
		p = data;
		start = u64_stats_fetch_begin(&xs->syncp);
		*p++ = u64_stats_read(&xs->tx_dropped);
		*p++ = u64_stats_read(&xs->tx_stops);
	} while (u64_stats_fetch_retry(&xs->syncp, start));
	data = p;
	do {
		start = u64_stats_fetch_begin(&ns->syncp);
		*data = u64_stats_read(&ns->polls);
	} while (u64_stats_fetch_retry(&ns->syncp, start));
	data++;
	do {
		start = u64_stats_fetch_begin(&nd->irq_syncp);
		*data = u64_stats_read(&nd->irqs);
	} while (u64_stats_fetch_retry(&nd->irq_syncp, start));
	apn_tunnel_stat_values(nd->apn, data + 1);
}

static const struct ethtool_ops apn_ethtool_ops = {
	.get_drvinfo		= apn_get_drvinfo,
	.get_link		= apn_get_link,
	.get_ringparam		= apn_get_ringparam,
	.get_sset_count		= apn_get_sset_count,
	.get_strings		= apn_get_strings,
	.get_ethtool_stats	= apn_get_ethtool_stats,
};

/* ---- probe/remove, link events ------------------------------------------- */

/* APN_EV_LINK from the OS queue (hard IRQ context). */
void apn_netdev_link_event(struct apn_dev *apn, u32 status)
{
	struct net_device *ndev = READ_ONCE(apn->netdev);

	if (ndev)
		apn_set_carrier(ndev, status & APN_STATUS_LINK_UP);
}

/*
 * Creates and registers apnN once the device is up and the OS queue (which
 * carries link events) works. A device without rings (APN_CAP_RINGS), or
 * with too few vectors, gets none.
 */
int apn_netdev_probe(struct apn_dev *apn, int nvecs)
{
	struct pci_dev *pdev = apn->pdev;
	struct net_device *ndev;
	struct apn_netdev *nd;
	u32 max_mtu;
	int ret;

	if (!(readl(apn->regs + APN_REG_CAPS) & APN_CAP_RINGS)) {
		dev_info(&pdev->dev, "device has no Ethernet rings: no network interface\n");
		return 0;
	}
	if (nvecs <= APN_VEC_RINGS) {
		dev_warn(&pdev->dev, "only %d MSI-X vectors: no network interface\n", nvecs);
		return 0;
	}
	/* A frame (and a VLAN tag) must fit the descriptor's 16-bit length. */
	max_mtu = min_t(u32, apn->mtu, U16_MAX - VLAN_ETH_HLEN);
	if (max_mtu < ETH_MIN_MTU) {
		dev_err(&pdev->dev, "device MTU %u is below %u\n", apn->mtu, ETH_MIN_MTU);
		return -ENODEV;
	}

	ndev = alloc_etherdev(sizeof(*nd));
	if (!ndev)
		return -ENOMEM;
	SET_NETDEV_DEV(ndev, &pdev->dev);
	strscpy(ndev->name, "apn%d", sizeof(ndev->name));
	nd = netdev_priv(ndev);
	nd->apn = apn;
	nd->ndev = ndev;
	nd->regs = apn->regs;
	nd->irq = pci_irq_vector(pdev, APN_VEC_RINGS);
	/* Buffers fit the largest frame the MTU allows, tagged, whatever MTU is set later. */
	nd->buf_len = ALIGN(max_mtu + VLAN_ETH_HLEN, SMP_CACHE_BYTES);
	nd->buf_len = min_t(u32, nd->buf_len, U16_MAX);
	u64_stats_init(&nd->napi_stats.syncp);
	u64_stats_init(&nd->xmit_stats.syncp);
	u64_stats_init(&nd->irq_syncp);

	eth_hw_addr_set(ndev, apn->mac);
	ndev->netdev_ops = &apn_netdev_ops;
	ndev->ethtool_ops = &apn_ethtool_ops;
	ndev->watchdog_timeo = 5 * HZ;
	ndev->mtu = max_mtu;
	ndev->min_mtu = ETH_MIN_MTU;
	ndev->max_mtu = max_mtu;
	netif_napi_add(ndev, &nd->napi, apn_poll);
	netif_carrier_off(ndev);

	ret = register_netdev(ndev);
	if (ret) {
		dev_err(&pdev->dev, "cannot register network interface: %d\n", ret);
		free_netdev(ndev);
		return ret;
	}
	/* Link events from now on reach it; then the current state. */
	WRITE_ONCE(apn->netdev, ndev);
	apn_set_carrier(ndev, readl(apn->regs + APN_REG_STATUS) & APN_STATUS_LINK_UP);
	netdev_info(ndev, "%s: MAC %pM, MTU %u, rings %u RX / %u TX\n", apn->name,
		    ndev->dev_addr, ndev->mtu, APN_RX_DESCS, APN_TX_DESCS);
	return 0;
}

/* Unregisters apnN (which stops it: rings off, IRQ freed) before the device goes. */
void apn_netdev_remove(struct apn_dev *apn)
{
	struct net_device *ndev = apn->netdev;

	if (!ndev)
		return;
	/* Wait out a link event that may have read the pointer. */
	WRITE_ONCE(apn->netdev, NULL);
	synchronize_irq(pci_irq_vector(apn->pdev, APN_VEC_OSQ));
	/* No tunnel may outlive the interface (nor attach from now on). */
	apn_tunnel_shutdown(apn);
	unregister_netdev(ndev);
	free_netdev(ndev);
}
