# SPDX-License-Identifier: GPL-2.0-or-later
# Kernel IP over the Ethernet rings (seed 002) while a user-level endpoint on
# the same port and address lives and crashes: brings apn0 up as 10.99.0.K/24,
# pings 10.99.0.PEER (phase "before"); then pings on in the background
# (phase "during") while apn-recv listens on UDP PORT (a trusted endpoint
# with its event and variable-length queues) and is killed with SIGKILL; then
# pings again ("after"), checks that the dead process's port can be bound
# again; closes and reopens apn0 and pings ("reopen"), unloads the driver with
# apn0 up, checks that the kernel logged no warning, and prints "APN-KIP-DONE"
# (relayed to the peer, which stops answering then).
# Arguments: PEER PORT.
. /scenarios/lib.sh
peer=$1 port=$2 status=0
apn_kip_up || exit 1
apn_kip_wait "$peer" || exit 1
apn_kip_ping before "$peer" -c 5 -W 2 || status=1

# apn_kip_listen LOG: starts apn-recv -L PORT in the background, waits for APN-READY
apn_kip_listen() {
	apn-recv -L "$port" -m unused -t 0 >"$1" 2>&1 &
	listener=$!
	t=0
	while [ $t -lt 100 ]; do
		if grep -q '^APN-READY' "$1"; then
			echo "APN-KIP-LISTENER pid=$listener $(cat "$1")"
			return 0
		fi
		kill -0 $listener 2>/dev/null || break
		usleep 200000
		t=$((t + 1))
	done
	echo "APN-KIP-LISTENER failed: $(cat "$1")"
	return 1
}

# 24 pings over 6 s: 2 s with the listener alive, 4 s after its death.
if apn_kip_listen /tmp/listen1.log; then
	ping -c 24 -i 0.25 -W 2 "10.99.0.$peer" >/tmp/ping-during.log 2>&1 &
	pinger=$!
	sleep 2
	kill -9 $listener
	wait $listener
	echo "APN-KIP-KILLED pid=$listener status=$?"
	wait $pinger
else
	status=1
	ping -c 24 -i 0.25 -W 2 "10.99.0.$peer" >/tmp/ping-during.log 2>&1
fi
apn_kip_summary during /tmp/ping-during.log || status=1
apn_kip_ping after "$peer" -c 5 -W 2 || status=1

# The crash released the endpoint and its port: another process binds it.
if apn_kip_listen /tmp/listen2.log; then
	kill $listener
	wait $listener
	echo "APN-KIP-REBOUND port=$port"
else
	status=1
fi
apn_kip_stats
apn_counters

# Close and reopen apn0 (rings torn down and programmed again), then unload
# the driver with apn0 up: remove() unregisters it first.
ip link set apn0 down && ip link set apn0 up || status=1
apn_kip_wait "$peer" && apn_kip_ping reopen "$peer" -c 3 -W 2 || status=1
if rmmod apertnic && [ ! -e /sys/class/net/apn0 ]; then
	echo "APN-KIP-UNLOADED"
else
	echo "APN-KIP-UNLOAD failed"
	status=1
fi
apn_kip_dmesg_clean || status=1
echo "APN-KIP-DONE status=$status"
exit $status
