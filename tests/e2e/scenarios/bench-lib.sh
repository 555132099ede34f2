# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by the benchmark scenarios (bench-server.sh, bench-client.sh; run by
# scripts/bench), after lib.sh. Not a scenario itself.
#
# Addresses (guest K):
#   virtio-net (scripts/testbed --virtio): 10.97.0.K/24, MAC 52:54:00:a8:00:KK
#   apertnic's net_device apn0, when the driver has one: lib.sh's apn_kip_up
#     (10.99.0.K/24, also the NIC's own IPv4 address for connection messages);
#     otherwise the NIC's address is lib.sh's apn_routes_ip one (10.0.0.K)
# Neighbours are static (no ARP on the measured paths).

BENCH_VIRTIO_NET=10.97.0
BENCH_APN0_NET=10.99.0

# No IPv6 on the guests' links: its neighbour discovery and multicast reports
# would be interrupts and frames the measurements did not cause.
# tracefs lets libapertnic's examples count their system calls with a perf counter
# on raw_syscalls:sys_enter.
bench_quiet() {
	for _bc in all default; do
		echo 1 >"/proc/sys/net/ipv6/conf/$_bc/disable_ipv6" 2>/dev/null
	done
	[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
	return 0
}

# virtio-net-pci's drivers are modules in Debian's kernel: load them in
# dependency order (each one only if not built in or loaded), then configure the
# interface. Prints "BENCH-VIRTIO-UP IFACE ADDR".
bench_virtio_up() {
	# (variables prefixed _b: the scenarios' own names are not touched)
	for _bm in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci \
		failover net_failover virtio_net; do
		[ -d "/sys/module/$_bm" ] && continue
		if [ ! -f "/lib/modules/virtio/$_bm.ko" ]; then
			echo "BENCH-WARN /lib/modules/virtio/$_bm.ko not in the image"
			return 1
		fi
		insmod "/lib/modules/virtio/$_bm.ko" || { echo "BENCH-WARN insmod $_bm failed"; return 1; }
	done
	BENCH_VIRTIO_IF=
	_bt=0
	while [ -z "$BENCH_VIRTIO_IF" ] && [ $_bt -lt 50 ]; do
		for _bn in /sys/class/net/*; do
			_bd=$(readlink "$_bn/device/driver" 2>/dev/null) || continue
			[ "${_bd##*/}" = virtio_net ] && BENCH_VIRTIO_IF=${_bn##*/}
		done
		[ -n "$BENCH_VIRTIO_IF" ] || sleep 0.1
		_bt=$((_bt + 1))
	done
	if [ -z "$BENCH_VIRTIO_IF" ]; then
		echo "BENCH-WARN no virtio-net interface (was the guest started with --virtio?)"
		return 1
	fi
	ip addr add "$BENCH_VIRTIO_NET.$APN_HOST/24" dev "$BENCH_VIRTIO_IF" &&
		ip link set "$BENCH_VIRTIO_IF" up || return 1
	_bk=1
	while [ $_bk -le "${APN_GUESTS:-8}" ]; do
		[ "$_bk" = "$APN_HOST" ] ||
			ip neigh replace "$BENCH_VIRTIO_NET.$_bk" lladdr "$(printf '52:54:00:a8:00:%02x' $_bk)" \
				dev "$BENCH_VIRTIO_IF" nud permanent
		_bk=$((_bk + 1))
	done
	echo "BENCH-VIRTIO-UP $BENCH_VIRTIO_IF $BENCH_VIRTIO_NET.$APN_HOST"
}

# apertnic: routes for the user-level path, and apn0 when the driver makes one.
# Sets BENCH_APN0=1 and prints "BENCH-APN0-UP ADDR" if apn0 is usable.
bench_apn_up() {
	# shellcheck disable=SC2034 # read by the scenarios that source this
	BENCH_APN0=0
	if [ -d /sys/class/net/apn0 ] && command -v apn_kip_up >/dev/null; then
		apn_kip_up || return 1
		_bk=1
		while [ $_bk -le "${APN_GUESTS:-8}" ]; do
			[ "$_bk" = "$APN_HOST" ] ||
				ip neigh replace "$BENCH_APN0_NET.$_bk" lladdr "$(printf '52:54:00:a7:00:%02x' $_bk)" \
					dev apn0 nud permanent
			_bk=$((_bk + 1))
		done
		# shellcheck disable=SC2034
		BENCH_APN0=1
		echo "BENCH-APN0-UP $BENCH_APN0_NET.$APN_HOST"
	else
		apn_routes_ip || return 1
		echo "BENCH-APN0-NONE (no apn0 net_device in this driver)"
	fi
}

# /proc/interrupts lines of both NICs, for the log.
bench_irq_lines() {
	grep -E 'virtio|apertnic|apn' /proc/interrupts | sed 's/^/BENCH-IRQ /'
}
