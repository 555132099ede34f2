/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qtest for the apertnic device: probe only (grown by the device qtests).
 */
#include "qemu/osdep.h"
#include "libqtest.h"
#include "libqos/pci-pc.h"
#include "hw/pci/pci_regs.h"
#include "../../hw/net/apertnic/apertnic_hw.h"

static void test_probe(void)
{
    QTestState *qts = qtest_init("-M q35 -nodefaults -device apertnic,addr=04.0");
    QPCIBus *bus = qpci_new_pc(qts, NULL);
    QPCIDevice *dev = qpci_device_find(bus, QPCI_DEVFN(4, 0));

    g_assert_nonnull(dev);
    g_assert_cmphex(qpci_config_readw(dev, PCI_VENDOR_ID), ==,
                    APN_PCI_VENDOR_ID);
    g_assert_cmphex(qpci_config_readw(dev, PCI_DEVICE_ID), ==,
                    APN_PCI_DEVICE_ID);
    g_free(dev);
    qpci_free_pc(bus);
    qtest_quit(qts);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/apertnic/probe", test_probe);
    return g_test_run();
}
