# SPDX-License-Identifier: GPL-2.0-or-later
# Server side of scripts/bench (needs scripts/testbed --virtio): brings up
# virtio-net and apertnic (and apn0 if the driver has it), starts every
# benchmark server in the background, prints
#   BENCH-SERVER-READY host=K virtio=ADDR apn0=ADDR|none lib=pingpong:putget:|none
# (relayed to the client) and serves until a BENCH-CLIENT-DONE line arrives on
# the console (relayed from the client), or SECS seconds (default 1800) pass.
# Servers (all sleep when idle): udp_pingpong 7001, udp_rate 7003 and
# tcp_stream 7004 on any address; apn_pingpong endpoint port 5001, apn_rate 5002;
# libapertnic's examples apn-pingpong -m raw 5003 and apn-putget 5004 if present.
# Arguments: [SECS]
. /scenarios/lib.sh
. /scenarios/bench-lib.sh
secs=${1:-1800}
bench_quiet
bench_virtio_up || exit 1
bench_apn_up || exit 1
pids=
udp_pingpong -s -p 7001 -t "$secs" & pids="$pids $!"
udp_rate -s -p 7003 -t "$secs" & pids="$pids $!"
tcp_stream -s -p 7004 -t "$secs" & pids="$pids $!"
apn_pingpong -s -P 5001 -t "$secs" & pids="$pids $!"
apn_rate -s -P 5002 -t "$secs" & pids="$pids $!"
# libapertnic's examples, when the image has them: they serve one client per
# process, so each is restarted; -t 20 bounds a server whose client vanished.
lib=
if command -v apn-pingpong >/dev/null; then
	(while :; do apn-pingpong -L 5003 -m raw -t 20 >/dev/null 2>&1 || sleep 1; done) &
	pids="$pids $!" lib="${lib}pingpong:"
fi
if command -v apn-putget >/dev/null; then
	(while :; do apn-putget -L 5004 -t 20 >/dev/null 2>&1 || sleep 1; done) &
	pids="$pids $!" lib="${lib}putget:"
fi
sleep 1
apn0=none
[ "$BENCH_APN0" = 1 ] && apn0=$BENCH_APN0_NET.$APN_HOST
echo "BENCH-SERVER-READY host=$APN_HOST virtio=$BENCH_VIRTIO_NET.$APN_HOST apn0=$apn0 lib=${lib:-none}"
status=0
# shellcheck disable=SC3045 # busybox sh has read -t
if read -r -t "$secs" line; then
	echo "got: $line"
else
	echo "bench-server: no BENCH-CLIENT-DONE within $secs s"
	status=1
fi
# shellcheck disable=SC2086 # the pids are split on purpose
kill $pids 2>/dev/null
bench_irq_lines
apn_counters
exit $status
