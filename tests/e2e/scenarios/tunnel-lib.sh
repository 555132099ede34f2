# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by the tunnel scenarios (seed 002's user-space tunnel of apn0's
# traffic): the driver's tunnel state and counters, and apn-tunnel in the
# background.
tun=/sys/class/net/apn0/device/tunnel

# tun_report PHASE: "APN-TUN-STATE phase=P <state>", "APN-TUN-STAT phase=P NAME N"...
tun_report() {
	echo "APN-TUN-STATE phase=$1 $(cat $tun/state)"
	for f in "$tun"/*; do
		[ "${f##*/}" = state ] && continue
		echo "APN-TUN-STAT phase=$1 ${f##*/} $(cat "$f")"
	done
}

# tun_wait_line LOG REGEX [PID]: until a line of LOG matches (100 looks, 0.2 s
# apart; stops early if PID exits); prints it
tun_wait_line() {
	t=0
	while [ $t -lt 100 ]; do
		if grep -q "$2" "$1"; then
			grep -m 1 "$2" "$1"
			return 0
		fi
		[ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && break
		usleep 200000
		t=$((t + 1))
	done
	echo "APN-TUN-WAIT no '$2' in $1: $(cat "$1")"
	return 1
}

# tun_start LOG ARGS...: apn-tunnel -q ARGS in the background ($tunnel) until it
# has attached
tun_start() {
	log=$1
	shift
	apn-tunnel -q "$@" >"$log" 2>&1 &
	tunnel=$!
	line=$(tun_wait_line "$log" '^APN-TUNNEL-ATTACHED ' "$tunnel") || {
		echo "APN-TUN-START failed: $line"
		return 1
	}
	echo "APN-TUN-STARTED pid=$tunnel $line"
}

# tun_wait_stat NAME VALUE: until the driver's counter reaches VALUE (100 looks)
tun_wait_stat() {
	t=0
	while [ $t -lt 100 ]; do
		[ "$(cat "$tun/$1")" -ge "$2" ] && return 0
		usleep 100000
		t=$((t + 1))
	done
	echo "APN-TUN-WAIT $1 is $(cat "$tun/$1"), expected $2"
	return 1
}
