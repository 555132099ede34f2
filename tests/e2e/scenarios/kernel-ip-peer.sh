# SPDX-License-Identifier: GPL-2.0-or-later
# Kernel IP over the Ethernet rings (seed 002), the quiet side: brings apn0 up
# as 10.99.0.K/24, pings the peer 10.99.0.PEER 5 times (no loss allowed), then
# keeps answering the peer's pings until its "APN-KIP-DONE" line is relayed
# here (see kernel-ip-crash.sh). Then statistics and counters.
# Arguments: PEER (the other guest's host number).
. /scenarios/lib.sh
status=0
apn_kip_up || exit 1
apn_kip_wait "$1" || exit 1
apn_kip_ping before "$1" -c 5 -W 2 || status=1
# shellcheck disable=SC3045 # busybox sh has read -t
if read -r -t 300 line; then
	echo "got: $line"
else
	echo "kernel-ip-peer: no APN-KIP-DONE from the peer"
	status=1
fi
apn_kip_dmesg_clean || status=1
apn_kip_stats
apn_counters
exit $status
