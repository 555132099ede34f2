# SPDX-License-Identifier: GPL-2.0-or-later
# Smoke test of the guest image: kernel version, PCI devices, arguments. Exits 0.
echo "kernel: $(uname -r)"
echo "host id: ${APN_HOST:-none}, name: ${APN_NAME:-none}, args: $*"
for d in /sys/bus/pci/devices/*; do
	drv=-
	[ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
	echo "pci ${d##*/} $(cat "$d/vendor"):$(cat "$d/device") class $(cat "$d/class") driver $drv"
done
for n in /sys/class/net/*; do
	echo "net ${n##*/} $(cat "$n/address")"
done
[ -d /sys/module/apertnic ] && echo "apertnic module loaded"
exit 0
