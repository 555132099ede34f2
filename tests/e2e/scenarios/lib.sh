# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by scenarios: shared guest-side setup.

# scripts/testbed gives guest K host id K and MAC 52:54:00:a7:00:KK (hex).
apn_routes() {
	k=1
	while [ $k -le "${APN_GUESTS:-8}" ]; do
		apnctl route $k "$(printf '52:54:00:a7:00:%02x' $k)" || return 1
		k=$((k + 1))
	done
}

apn_counters() {
	echo "APN-COUNTERS-BEGIN ${APN_NAME:-guest}"
	apnctl counters
	echo "APN-COUNTERS-END"
}

# Connection messages travel as UDP/IPv4: guest K is 10.0.0.K, and every route
# carries the peer's IPv4 address too.
apn_routes_ip() {
	apnctl host-id "${APN_HOST:?}" "10.0.0.$APN_HOST" || return 1
	k=1
	while [ $k -le "${APN_GUESTS:-8}" ]; do
		apnctl route $k "$(printf '52:54:00:a7:00:%02x' $k)" "10.0.0.$k" || return 1
		k=$((k + 1))
	done
}

# Kernel IP over the NIC's Ethernet rings (seed 002): guest K is 10.99.0.K/24 on
# apn0, and its device IP (user-level datagrams) is the same address: one port,
# one address, shared by the kernel and the endpoints.
apn_kip_up() {
	kip="10.99.0.${APN_HOST:?}"
	apnctl host-id "$APN_HOST" "$kip" || return 1
	k=1
	while [ $k -le "${APN_GUESTS:-8}" ]; do
		apnctl route $k "$(printf '52:54:00:a7:00:%02x' $k)" "10.99.0.$k" || return 1
		k=$((k + 1))
	done
	ip addr add "$kip/24" dev apn0 && ip link set apn0 up || return 1
	echo "APN-KIP-UP apn0 $kip mac $(cat /sys/class/net/apn0/address)" \
		"mtu $(cat /sys/class/net/apn0/mtu) carrier $(cat /sys/class/net/apn0/carrier)"
}

# apn_kip_wait PEER: until 10.99.0.PEER answers (it may still be booting), 60 tries
apn_kip_wait() {
	t=0
	while [ $t -lt 60 ]; do
		if ping -c 1 -W 1 "10.99.0.$1" >/dev/null 2>&1; then
			echo "APN-KIP-REACHABLE 10.99.0.$1 after $t tries"
			return 0
		fi
		sleep 1
		t=$((t + 1))
	done
	echo "APN-KIP-UNREACHABLE 10.99.0.$1"
	return 1
}

# apn_kip_summary PHASE LOG: "APN-PING phase=P sent=N received=M loss=L%" from
# busybox ping's summary line in LOG; true if nothing was lost
apn_kip_summary() {
	line=$(grep 'packets transmitted' "$2")
	sent=$(echo "$line" | sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p')
	recv=$(echo "$line" | sed -n 's/.*, \([0-9]*\) packets received.*/\1/p')
	loss=$(echo "$line" | sed -n 's/.*, \([0-9]*\)% packet loss.*/\1/p')
	echo "APN-PING phase=$1 sent=${sent:-?} received=${recv:-?} loss=${loss:-?}%"
	[ -n "$sent" ] && [ "$sent" -gt 0 ] && [ "$loss" = 0 ]
}

# apn_kip_ping PHASE PEER PING_ARGS...
apn_kip_ping() {
	phase=$1 peer=$2
	shift 2
	ping "$@" "10.99.0.$peer" >"/tmp/ping-$phase.log" 2>&1
	apn_kip_summary "$phase" "/tmp/ping-$phase.log"
}

# Interface, ring and device statistics: ethtool -S when the image has it.
apn_kip_stats() {
	echo "APN-KIP-STATS-BEGIN"
	for s in rx_packets rx_bytes rx_errors rx_dropped tx_packets tx_bytes tx_errors \
		tx_dropped; do
		echo "apn0 $s $(cat "/sys/class/net/apn0/statistics/$s")"
	done
	if command -v ethtool >/dev/null; then
		ethtool -i apn0
		echo "ethtool link: $(ethtool apn0 | sed -n 's/.*Link detected: //p')"
		ethtool -S apn0
	else
		echo "(no ethtool in the image)"
	fi
	echo "APN-KIP-STATS-END"
}

# The driver's kernel messages, then kernel warnings since boot: false (and
# prints them) if any.
apn_kip_dmesg_clean() {
	dmesg | grep -E 'apertnic|apn[0-9]' | sed 's/^/dmesg: /'
	if dmesg | grep -E 'WARNING|BUG|Oops|Call Trace|general protection'; then
		echo "APN-KIP-DMESG kernel complained (above)"
		return 1
	fi
	echo "APN-KIP-DMESG clean"
}
