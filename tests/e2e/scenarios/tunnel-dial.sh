# SPDX-License-Identifier: GPL-2.0-or-later
# Two apn-tunnels carrying their kernels' IP traffic to each other over
# apertures (seed 002's tunnel, peer mode), the dialing side (see
# tunnel-listen.sh): brings apn0 up as 10.99.0.K/24, waits for the peer's
# "APN-TUN-LISTENING", starts apn-tunnel --peer PEER:PORT, waits for the
# peer's "APN-TUN-PEER-ATTACHED" and pings it ("peer": both kernels' frames
# travel between the two processes, each hands them to its stack); asks the
# peer to kill its apn-tunnel, waits until ours reports the peer down and
# pings again ("peer-gone": frames go to the wire); stops ours with SIGTERM,
# pings directly ("direct"), and prints "APN-KIP-DONE" (relayed to the peer).
# Arguments: PEER PORT.
. /scenarios/lib.sh
. /scenarios/tunnel-lib.sh
peer=$1 port=$2 status=0 tunnel=
apn_kip_up || exit 1
apn_kip_wait "$peer" || exit 1

# shellcheck disable=SC3045 # busybox sh has read -t
read -r -t 200 line && echo "got: $line" || exit 1
if tun_start /tmp/tunnel.log --peer "$peer:$port" -t 60; then
	echo "APN-TUN-DIALED $(grep '^APN-TUNNEL-PEER ' /tmp/tunnel.log)"
	# shellcheck disable=SC3045
	read -r -t 200 line && echo "got: $line" || status=1
	apn_kip_ping peer "$peer" -c 5 -W 2 || status=1
	tun_report peer
	echo "APN-TUN-KILL-PEER"
	# shellcheck disable=SC3045
	read -r -t 200 line && echo "got: $line" || status=1
	line=$(tun_wait_line /tmp/tunnel.log '^APN-TUNNEL-PEER-DOWN ' "$tunnel") || status=1
	echo "APN-TUN-PEER-DOWN-SEEN $line"
	apn_kip_ping peer-gone "$peer" -c 5 -W 2 || status=1
	tun_report peer-gone
	kill -TERM "$tunnel"
	wait "$tunnel"
	echo "APN-TUN-TERMINATED status=$? $(grep '^APN-TUNNEL-DETACHED ' /tmp/tunnel.log)"
else
	status=1
fi
apn_kip_ping direct "$peer" -c 3 -W 2 || status=1
apn_kip_dmesg_clean || status=1
echo "APN-KIP-DONE status=$status"
exit $status
