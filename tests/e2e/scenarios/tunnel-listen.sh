# SPDX-License-Identifier: GPL-2.0-or-later
# Two apn-tunnels carrying their kernels' IP traffic to each other over
# apertures (seed 002's tunnel, peer mode), the listening side: brings apn0 up
# as 10.99.0.K/24, starts apn-tunnel --listen PORT ("APN-TUN-LISTENING",
# relayed to the peer, which dials), says "APN-TUN-PEER-ATTACHED" once it has
# attached (relayed too), waits for the peer's "APN-TUN-KILL-PEER", kills its
# apn-tunnel with SIGKILL ("APN-TUN-PEER-KILLED", relayed: the peer must carry
# on without it), then answers pings until the peer's "APN-KIP-DONE".
# Arguments: PEER PORT.
. /scenarios/lib.sh
. /scenarios/tunnel-lib.sh
peer=$1 port=$2 status=0
apn_kip_up || exit 1
apn_kip_wait "$peer" || exit 1

apn-tunnel -q --listen "$port" -t 200 >/tmp/tunnel.log 2>&1 &
tunnel=$!
line=$(tun_wait_line /tmp/tunnel.log '^APN-TUNNEL-LISTENING ' "$tunnel") || exit 1
echo "APN-TUN-LISTENING $line"
# The peer dials once it has read that line: wait as long as it may take.
t=0
while [ $t -lt 600 ] && ! grep -q '^APN-TUNNEL-ATTACHED ' /tmp/tunnel.log; do
	kill -0 "$tunnel" 2>/dev/null || break
	usleep 200000
	t=$((t + 1))
done
if grep -q '^APN-TUNNEL-ATTACHED ' /tmp/tunnel.log; then
	echo "APN-TUN-PEER-ATTACHED $(grep '^APN-TUNNEL-PEER ' /tmp/tunnel.log)"
else
	echo "APN-TUN-PEER-ATTACH failed: $(cat /tmp/tunnel.log)"
	status=1
fi

# shellcheck disable=SC3045 # busybox sh has read -t
read -r -t 300 line && echo "got: $line" || status=1
tun_report peer
kill -9 "$tunnel"
wait "$tunnel"
echo "APN-TUN-PEER-KILLED status=$?"
tun_report killed

# shellcheck disable=SC3045
if read -r -t 300 line; then
	echo "got: $line"
else
	echo "tunnel-listen: no APN-KIP-DONE from the peer"
	status=1
fi
apn_kip_dmesg_clean || status=1
exit $status
