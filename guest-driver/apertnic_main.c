// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apertnic: PCI driver for the aperture-mapped NIC.
 *
 * This half brings the device up (tables, OS event queue, MSI-X), services the
 * OS queue and exposes the counters in sysfs. Applications use the character
 * device in apertnic_chardev.c; the kernel's own traffic goes through the
 * Ethernet rings of the network interface in apertnic_netdev.c.
 */

#include <linux/bitmap.h>
#include <linux/capability.h>
#include <linux/dma-mapping.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/sysfs.h>

#include "apertnic.h"
#include "uapi/apertnic.h"

static unsigned int param_max_in = 1024;
module_param_named(max_in, param_max_in, uint, 0444);
MODULE_PARM_DESC(max_in, "Most incoming apertures per NIC (default 1024, capped by the device)");

static ushort param_host_id;
module_param_named(host_id, param_host_id, ushort, 0444);
MODULE_PARM_DESC(host_id, "Cluster host address given to each NIC at probe (default 0)");

static DEFINE_IDA(apn_ida);

static void apn_dev_release(struct kref *kref)
{
	struct apn_dev *apn = container_of(kref, struct apn_dev, kref);

	/* The IRQ that queues it is gone; a work item still queued runs and sees ->dead. */
	cancel_work_sync(&apn->cm_work);
	ida_free(&apn_ida, apn->id);
	bitmap_free(apn->endpoints);
	bitmap_free(apn->ports);
	kfree(apn->ep_wq);
	kfree(apn->cm_ep_from);
	kfree(apn->in_slots);
	kfree(apn->out_slots);
	mutex_destroy(&apn->lock);
	pci_dev_put(apn->pdev);
	kfree(apn);
}

void apn_dev_put(struct apn_dev *apn)
{
	kref_put(&apn->kref, apn_dev_release);
}

static void apn_dev_put_action(void *apn)
{
	apn_dev_put(apn);
}

void apn_set_host_id(struct apn_dev *apn, u16 host_id)
{
	lockdep_assert_held(&apn->lock);
	apn->host_id = host_id;
	writel(host_id, apn->regs + APN_REG_HOST_ID);
}

static void apn_write_addr(struct apn_dev *apn, unsigned int lo_reg, dma_addr_t addr)
{
	writel(lower_32_bits(addr), apn->regs + lo_reg);
	writel(upper_32_bits(addr), apn->regs + lo_reg + 4);
}

/* Reads the device's geometry and refuses devices this driver cannot drive safely. */
static int apn_read_config(struct apn_dev *apn)
{
	struct pci_dev *pdev = apn->pdev;
	struct device *dev = &pdev->dev;
	u32 magic, mac_lo, mac_hi;

	magic = readl(apn->regs + APN_REG_MAGIC);
	if (magic != APN_MAGIC) {
		dev_err(dev, "bad magic %#010x (expected %#010x)\n", magic, APN_MAGIC);
		return -ENODEV;
	}
	apn->spec_version = readl(apn->regs + APN_REG_VERSION);
	if (apn->spec_version >> 16 != APN_SPEC_VERSION >> 16) {
		dev_err(dev, "unsupported spec version %u.%u (driver supports %u.x)\n",
			apn->spec_version >> 16, apn->spec_version & 0xffff,
			APN_SPEC_VERSION >> 16);
		return -ENODEV;
	}

	mac_lo = readl(apn->regs + APN_REG_MAC_LO);
	mac_hi = readl(apn->regs + APN_REG_MAC_HI);
	apn->mac[0] = mac_lo;
	apn->mac[1] = mac_lo >> 8;
	apn->mac[2] = mac_lo >> 16;
	apn->mac[3] = mac_lo >> 24;
	apn->mac[4] = mac_hi;
	apn->mac[5] = mac_hi >> 8;
	apn->mtu = readl(apn->regs + APN_REG_MTU);
	apn->num_endpoints = readl(apn->regs + APN_REG_NUM_ENDPOINTS);
	apn->num_out = readl(apn->regs + APN_REG_NUM_OUT);
	apn->out_slot_shift = readl(apn->regs + APN_REG_OUT_SLOT_SHIFT);
	apn->num_in = min(readl(apn->regs + APN_REG_MAX_IN), param_max_in);

	if (!apn->num_in) {
		dev_err(dev, "no incoming apertures (device MAX_IN %u, max_in=%u)\n",
			readl(apn->regs + APN_REG_MAX_IN), param_max_in);
		return -EINVAL;
	}
	/* Entries name endpoints in 16 bits; slots must be whole pages to be mapped alone. */
	if (!apn->num_endpoints || apn->num_endpoints > U16_MAX + 1 || !apn->num_out ||
	    apn->out_slot_shift < PAGE_SHIFT || apn->out_slot_shift > 31) {
		dev_err(dev, "bad geometry: %u endpoints, %u out slots of 2^%u bytes\n",
			apn->num_endpoints, apn->num_out, apn->out_slot_shift);
		return -ENODEV;
	}
	/* User pages and slots are mapped into processes: they must lie inside the BARs. */
	/* Endpoints past APN_MAX_ENDPOINTS have no per-endpoint registers: leave them unused. */
	if (apn->num_endpoints > APN_MAX_ENDPOINTS) {
		dev_warn(dev, "device has %u endpoints, using the first %u\n", apn->num_endpoints,
			 APN_MAX_ENDPOINTS);
		apn->num_endpoints = APN_MAX_ENDPOINTS;
	}
	if (pci_resource_len(pdev, APN_BAR_REGS) < APN_USER_PAGE((u64)apn->num_endpoints) ||
	    pci_resource_len(pdev, APN_BAR_APERTURES) < (u64)apn->num_out << apn->out_slot_shift) {
		dev_err(dev, "BARs too small for %u endpoints and %u out slots\n",
			apn->num_endpoints, apn->num_out);
		return -ENODEV;
	}
	return 0;
}

/* Stops all DMA before the tables and the queue are freed (devres runs it). */
static void apn_stop(void *data)
{
	struct apn_dev *apn = data;

	writel(0, apn->regs + APN_REG_CTRL);
	writel(0, apn->regs + APN_REG_OSQ_SIZE);
	readl(apn->regs + APN_REG_STATUS);
	pci_clear_master(apn->pdev);
}

static int apn_setup_tables(struct apn_dev *apn)
{
	struct device *dev = &apn->pdev->dev;
	size_t osq_bytes = sizeof(struct apn_queue_ctrl) +
			   APN_OSQ_EVENTS * sizeof(struct apn_event);

	/* Coherent memory is zeroed: every entry starts invalid. */
	apn->in_table = dmam_alloc_coherent(dev, array_size(apn->num_in, sizeof(*apn->in_table)),
					    &apn->in_table_dma, GFP_KERNEL);
	apn->out_table = dmam_alloc_coherent(dev,
					     array_size(apn->num_out, sizeof(*apn->out_table)),
					     &apn->out_table_dma, GFP_KERNEL);
	apn->osq_ctrl = dmam_alloc_coherent(dev, osq_bytes, &apn->osq_dma, GFP_KERNEL);
	if (!apn->in_table || !apn->out_table || !apn->osq_ctrl)
		return -ENOMEM;
	apn->osq_events = (struct apn_event *)(apn->osq_ctrl + 1);

	apn_write_addr(apn, APN_REG_IN_TABLE_LO, apn->in_table_dma);
	writel(apn->num_in, apn->regs + APN_REG_IN_TABLE_COUNT);
	apn_write_addr(apn, APN_REG_OUT_TABLE_LO, apn->out_table_dma);
	writel(apn->num_out, apn->regs + APN_REG_OUT_TABLE_COUNT);

	/* The consumer asks for interrupts through the control block. */
	apn->osq_ctrl->irq = cpu_to_le32(1);
	apn_write_addr(apn, APN_REG_OSQ_BASE_LO, apn->osq_dma);
	writel(APN_OSQ_EVENTS, apn->regs + APN_REG_OSQ_SIZE);
	/* Pointers run free; start wherever the device says we are. */
	apn->osq_rdptr = readl(apn->regs + APN_REG_OSQ_RDPTR);

	return devm_add_action_or_reset(dev, apn_stop, apn);
}

/* The endpoint named by an OS queue event, or -1 if the device named none we have. */
static int apn_event_endpoint(struct apn_dev *apn, const struct apn_event *ev)
{
	u16 ep = le16_to_cpu(ev->endpoint);

	return ep < apn->num_endpoints ? ep : -1;
}

/* Anyone can send us datagrams: count them, do not flood the log. */
static void apn_no_port(struct apn_dev *apn, const struct apn_event *ev)
{
	u64 data = le64_to_cpu(ev->data);
	u32 src_ip = data >> 16;

	atomic_long_inc(&apn->no_port_events);
	dev_dbg_ratelimited(&apn->pdev->dev, "datagram for unbound port %u from %pI4h port %u\n",
			    le32_to_cpu(ev->info) & 0xffff, &src_ip, (u16)data);
}

static void apn_handle_event(struct apn_dev *apn, const struct apn_event *ev, u32 pos)
{
	struct device *dev = &apn->pdev->dev;
	u32 info = le32_to_cpu(ev->info);
	int ep;

	switch (ev->type) {
	case APN_EV_TEST:
		complete(&apn->irq_test);
		break;
	case APN_EV_LINK:
		dev_info(dev, "link %s\n", info & APN_STATUS_LINK_UP ? "up" : "down");
		apn_netdev_link_event(apn, info);
		break;
	case APN_EV_DEVICE_ERROR:
		dev_err_ratelimited(dev, "device error %u, detail %#llx\n", info,
				    le64_to_cpu(ev->data));
		break;
	case APN_EV_OOB_DATA:
		/*
		 * The endpoint was armed and has events: wake its pollers, and only
		 * them. Who owns the endpoint does not matter here: poll() rechecks
		 * the queue, so a wake meant for a previous owner is harmless.
		 */
		ep = apn_event_endpoint(apn, ev);
		if (ep >= 0)
			wake_up_interruptible(&apn->ep_wq[ep]);
		break;
	case APN_EV_OVERFLOW:
		/*
		 * The application sees the loss in its queue's control block; the
		 * wake lets a sleeper find out even if no further event arrives.
		 */
		atomic_long_inc(&apn->overflow_events);
		ep = apn_event_endpoint(apn, ev);
		if (ep >= 0)
			wake_up_interruptible(&apn->ep_wq[ep]);
		dev_warn_ratelimited(dev, "endpoint %u: queue overflowed, %u events/records lost so far\n",
				     le16_to_cpu(ev->endpoint), info);
		break;
	case APN_EV_NO_PORT:
		apn_no_port(apn, ev);
		break;
	case APN_EV_CONNECT:
	case APN_EV_ACCEPT:
	case APN_EV_CLOSE:
	case APN_EV_ALIVE:
	case APN_EV_ALIVEACK:
	case APN_EV_ERROR_MSG:
		/* an untrusted endpoint's connection message: kernel CM, in process context */
		if (apn_event_endpoint(apn, ev) >= 0)
			apn_cm_queue(apn, ev, pos);
		break;
	default:
		dev_dbg_ratelimited(dev, "ignored event %u for endpoint %u\n", ev->type,
				    le16_to_cpu(ev->endpoint));
		break;
	}
}

static irqreturn_t apn_osq_irq(int irq, void *data)
{
	struct apn_dev *apn = data;
	u32 wr = le32_to_cpu(READ_ONCE(apn->osq_ctrl->wrptr));
	u32 rd = apn->osq_rdptr;

	if (wr - rd > APN_OSQ_EVENTS) {
		dev_err_ratelimited(&apn->pdev->dev,
				    "OS queue write pointer %u is beyond read pointer %u, resyncing\n",
				    wr, rd);
		rd = wr;
	}
	/* The device writes the events before the mirror that covers them. */
	dma_rmb();
	for (; rd != wr; rd++)
		apn_handle_event(apn, &apn->osq_events[rd & (APN_OSQ_EVENTS - 1)], rd);
	apn->osq_rdptr = rd;
	writel(rd, apn->regs + APN_REG_OSQ_RDPTR);
	/* The vector is ours alone; an interrupt for events already consumed is not spurious. */
	return IRQ_HANDLED;
}

/* Proves DMA into the OS queue and MSI-X delivery before anyone relies on them. */
static int apn_irq_self_test(struct apn_dev *apn)
{
	struct device *dev = &apn->pdev->dev;

	writel(APN_VEC_OSQ, apn->regs + APN_REG_IRQ_TEST);
	if (!wait_for_completion_timeout(&apn->irq_test, HZ)) {
		if (le32_to_cpu(READ_ONCE(apn->osq_ctrl->wrptr)) != READ_ONCE(apn->osq_rdptr))
			dev_err(dev, "MSI-X self-test failed: test event queued but no interrupt within 1 s\n");
		else
			dev_err(dev, "MSI-X self-test failed: no test event within 1 s\n");
		return -EIO;
	}
	dev_info(dev, "MSI-X self-test passed\n");
	return 0;
}

static int apn_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct apn_dev *apn;
	u32 i;
	int ret, nvecs;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	pci_set_master(pdev);
	ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (ret) {
		dev_err(dev, "no 64-bit DMA\n");
		return ret;
	}
	ret = pcim_iomap_regions(pdev, BIT(APN_BAR_REGS), APN_DRV_NAME);
	if (ret)
		return ret;
	/* Claimed but not mapped: the aperture window is only ever mapped into processes. */
	ret = pci_request_region(pdev, APN_BAR_APERTURES, APN_DRV_NAME);
	if (ret)
		return ret;

	apn = kzalloc(sizeof(*apn), GFP_KERNEL);
	if (!apn)
		return -ENOMEM;
	apn->id = ida_alloc(&apn_ida, GFP_KERNEL);
	if (apn->id < 0) {
		ret = apn->id;
		kfree(apn);
		return ret;
	}
	kref_init(&apn->kref);
	atomic_long_set(&apn->no_port_events, 0);
	atomic_long_set(&apn->overflow_events, 0);
	apn->pdev = pci_dev_get(pdev);
	mutex_init(&apn->lock);
	INIT_LIST_HEAD(&apn->files);
	init_completion(&apn->irq_test);
	apn_cm_init(apn);
	apn_tunnel_init(apn);
	snprintf(apn->name, sizeof(apn->name), APN_DRV_NAME "%d", apn->id);
	/* Registered first so it runs last: the IRQ handler uses apn until freed. */
	ret = devm_add_action_or_reset(dev, apn_dev_put_action, apn);
	if (ret)
		return ret;
	pci_set_drvdata(pdev, apn);

	apn->regs = pcim_iomap_table(pdev)[APN_BAR_REGS];
	apn->regs_phys = pci_resource_start(pdev, APN_BAR_REGS);
	apn->ap_phys = pci_resource_start(pdev, APN_BAR_APERTURES);
	ret = apn_read_config(apn);
	if (ret)
		return ret;

	apn->endpoints = bitmap_zalloc(apn->num_endpoints, GFP_KERNEL);
	apn->ports = bitmap_zalloc(APN_NUM_PORTS, GFP_KERNEL);
	apn->ep_wq = kcalloc(apn->num_endpoints, sizeof(*apn->ep_wq), GFP_KERNEL);
	apn->cm_ep_from = kcalloc(apn->num_endpoints, sizeof(*apn->cm_ep_from), GFP_KERNEL);
	apn->in_slots = kcalloc(apn->num_in, sizeof(*apn->in_slots), GFP_KERNEL);
	apn->out_slots = kcalloc(apn->num_out, sizeof(*apn->out_slots), GFP_KERNEL);
	if (!apn->endpoints || !apn->ports || !apn->ep_wq || !apn->cm_ep_from || !apn->in_slots ||
	    !apn->out_slots)
		return -ENOMEM;
	for (i = 0; i < apn->num_endpoints; i++)
		init_waitqueue_head(&apn->ep_wq[i]);
	/* Port 0 means "none" to the device: never hand it out. */
	set_bit(0, apn->ports);
	apn->next_port = APN_PORT_EPHEMERAL_MIN;

	ret = apn_setup_tables(apn);
	if (ret)
		return ret;

	/* With one vector there is no network interface (its rings use APN_VEC_RINGS). */
	nvecs = pci_alloc_irq_vectors(pdev, 1, APN_NUM_VECTORS, PCI_IRQ_MSIX);
	if (nvecs < 0) {
		dev_err(dev, "cannot enable MSI-X: %d\n", nvecs);
		return nvecs;
	}
	ret = devm_request_irq(dev, pci_irq_vector(pdev, APN_VEC_OSQ), apn_osq_irq, 0,
			       apn->name, apn);
	if (ret)
		return ret;
	ret = apn_irq_self_test(apn);
	if (ret)
		return ret;

	apn->host_id = param_host_id;
	writel(apn->host_id, apn->regs + APN_REG_HOST_ID);
	writel(APN_CTRL_ENABLE, apn->regs + APN_REG_CTRL);

	/* The device is up and link events arrive: the kernel's interface. */
	ret = apn_netdev_probe(apn, nvecs);
	if (ret)
		return ret;

	apn->misc.minor = MISC_DYNAMIC_MINOR;
	apn->misc.name = apn->name;
	apn->misc.fops = &apn_fops;
	apn->misc.parent = dev;
	apn->misc.mode = 0666;
	ret = misc_register(&apn->misc);
	if (ret) {
		apn_netdev_remove(apn);
		return ret;
	}

	dev_info(dev, "%s: MAC %pM host %u, %u endpoints, %u out slots of %u bytes, %u in apertures, link %s\n",
		 apn->name, apn->mac, apn->host_id, apn->num_endpoints, apn->num_out,
		 1U << apn->out_slot_shift, apn->num_in,
		 readl(apn->regs + APN_REG_STATUS) & APN_STATUS_LINK_UP ? "up" : "down");
	return 0;
}

/*
 * The network interface goes first (closing it turns the rings off), then the
 * character device. Everything else (CTRL cleared, DMA stopped, memory freed)
 * is undone by devres.
 */
static void apn_remove(struct pci_dev *pdev)
{
	struct apn_dev *apn = pci_get_drvdata(pdev);

	apn_netdev_remove(apn);
	misc_deregister(&apn->misc);
	apn_revoke_files(apn);
	/* ->dead is set: connection messages still queued are dropped */
	flush_work(&apn->cm_work);
}

/* ---- sysfs ---------------------------------------------------------------- */

static ssize_t host_id_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct apn_dev *apn = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%u\n", apn->host_id);
}

static ssize_t host_id_store(struct device *dev, struct device_attribute *attr,
			     const char *buf, size_t count)
{
	struct apn_dev *apn = dev_get_drvdata(dev);
	u16 host_id;
	int ret;

	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	ret = kstrtou16(buf, 0, &host_id);
	if (ret)
		return ret;
	mutex_lock(&apn->lock);
	apn_set_host_id(apn, host_id);
	mutex_unlock(&apn->lock);
	return count;
}
static DEVICE_ATTR_RW(host_id);

/* Driver-side event counts (the device counts the same datagrams in rx_drop_no_port). */
static ssize_t no_port_events_show(struct device *dev, struct device_attribute *attr,
				   char *buf)
{
	struct apn_dev *apn = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%ld\n", atomic_long_read(&apn->no_port_events));
}
static DEVICE_ATTR_RO(no_port_events);

static ssize_t overflow_events_show(struct device *dev, struct device_attribute *attr,
				    char *buf)
{
	struct apn_dev *apn = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%ld\n", atomic_long_read(&apn->overflow_events));
}
static DEVICE_ATTR_RO(overflow_events);

/* Connection messages for untrusted endpoints lost before the driver could act on them. */
static ssize_t cm_dropped_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct apn_dev *apn = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%ld\n", atomic_long_read(&apn->cm_dropped));
}
static DEVICE_ATTR_RO(cm_dropped);

static struct attribute *apn_attrs[] = {
	&dev_attr_host_id.attr,
	&dev_attr_no_port_events.attr,
	&dev_attr_overflow_events.attr,
	&dev_attr_cm_dropped.attr,
	NULL,
};

static const struct attribute_group apn_attr_group = {
	.attrs = apn_attrs,
};

struct apn_counter_attr {
	struct device_attribute attr;
	unsigned int id;
};

static ssize_t apn_counter_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct apn_dev *apn = dev_get_drvdata(dev);
	struct apn_counter_attr *ca = container_of(attr, struct apn_counter_attr, attr);

	return sysfs_emit(buf, "%llu\n", apn_read_counter(apn, ca->id));
}

#define APN_COUNTER_ATTR(cid, cname)						\
	[APN_CNT_##cid] = {							\
		.attr = { .attr = { .name = cname, .mode = 0444 },		\
			  .show = apn_counter_show },				\
		.id = APN_CNT_##cid,						\
	},
static struct apn_counter_attr apn_counter_attrs[] = {
	APN_COUNTER_LIST(APN_COUNTER_ATTR)
};
#undef APN_COUNTER_ATTR

#define APN_COUNTER_ATTR_PTR(cid, cname) \
	[APN_CNT_##cid] = &apn_counter_attrs[APN_CNT_##cid].attr.attr,
/* One more slot than counters: the NULL that ends the list. */
static struct attribute *apn_counter_attr_ptrs[APN_CNT__COUNT + 1] = {
	APN_COUNTER_LIST(APN_COUNTER_ATTR_PTR)
};
#undef APN_COUNTER_ATTR_PTR

static const struct attribute_group apn_counter_group = {
	.name = "counters",
	.attrs = apn_counter_attr_ptrs,
};

static const struct attribute_group *apn_groups[] = {
	&apn_attr_group,
	&apn_counter_group,
	&apn_tunnel_attr_group,
	NULL,
};

static const struct pci_device_id apn_pci_ids[] = {
	{ PCI_DEVICE(APN_PCI_VENDOR_ID, APN_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, apn_pci_ids);

static struct pci_driver apn_pci_driver = {
	.name = APN_DRV_NAME,
	.id_table = apn_pci_ids,
	.probe = apn_probe,
	.remove = apn_remove,
	/* Created after probe succeeds and removed before remove() runs. */
	.dev_groups = apn_groups,
};
module_pci_driver(apn_pci_driver);

MODULE_DESCRIPTION("apertnic aperture-mapped NIC");
MODULE_LICENSE("GPL");
