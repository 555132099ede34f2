# SPDX-License-Identifier: GPL-2.0-or-later
# User-space tunneled access for the kernel's IP traffic (seed 002): brings apn0
# up as 10.99.0.K/24 and pings 10.99.0.PEER directly ("before"); then with
# apn-tunnel relaying every frame the kernel sends ("tunneled"); kills it with
# SIGKILL and pings again ("after-kill": the driver fell back on release);
# starts it again with a 300 ms watchdog, pings ("tunneled2"), stops it with
# SIGSTOP, waits until the driver reports the watchdog's fallback and pings
# ("stopped"); SIGCONT lets it find out and exit (status 3); a third one is
# stopped with SIGTERM and detaches itself ("tunneled3"); then apn-tunnel-test
# checks the ABI and the rings in detail ("after-abi"). After each phase it
# prints the driver's tunnel state and counters (sysfs), then ethtool -S, the
# driver's messages, and "APN-KIP-DONE" (relayed to the peer, which stops
# answering then).
# Arguments: PEER.
. /scenarios/lib.sh
. /scenarios/tunnel-lib.sh
peer=$1 status=0 tunnel=

apn_kip_up || exit 1
apn_kip_wait "$peer" || exit 1
apn_kip_ping before "$peer" -c 5 -W 2 || status=1
tun_report before

# 1. Tunneled, then SIGKILL: the released file gives the traffic back.
if tun_start /tmp/tunnel1.log; then
	apn_kip_ping tunneled "$peer" -c 5 -W 2 || status=1
	tun_report tunneled
	kill -9 "$tunnel"
	wait "$tunnel"
	echo "APN-TUN-KILLED status=$?"
	tun_report killed
else
	status=1
fi
apn_kip_ping after-kill "$peer" -c 5 -W 2 || status=1

# 2. A 300 ms watchdog, then SIGSTOP: no more kicks, the watchdog gives it back.
if tun_start /tmp/tunnel2.log -w 300; then
	apn_kip_ping tunneled2 "$peer" -c 3 -W 2 || status=1
	kill -STOP "$tunnel"
	tun_wait_stat fallback_watchdog 1 || status=1
	apn_kip_ping stopped "$peer" -c 5 -W 2 || status=1
	tun_report stopped
	kill -CONT "$tunnel"
	wait "$tunnel"
	echo "APN-TUN-CONTINUED status=$? $(grep '^APN-TUNNEL-FALLBACK ' /tmp/tunnel2.log)"
else
	status=1
fi

# 3. SIGTERM: it detaches itself.
if tun_start /tmp/tunnel3.log; then
	apn_kip_ping tunneled3 "$peer" -c 3 -W 2 || status=1
	kill -TERM "$tunnel"
	wait "$tunnel"
	echo "APN-TUN-TERMINATED status=$? $(grep '^APN-TUNNEL-DETACHED ' /tmp/tunnel3.log)"
	tun_report detached
else
	status=1
fi
apn_kip_ping after-detach "$peer" -c 3 -W 2 || status=1

# 4. The ABI, flow control, the stack and wire paths and bad values, raw.
apn-tunnel-test "$peer" || status=1
apn_kip_ping after-abi "$peer" -c 3 -W 2 || status=1

apn_kip_stats
apn_counters
apn_kip_dmesg_clean || status=1
echo "APN-KIP-DONE status=$status"
exit $status
