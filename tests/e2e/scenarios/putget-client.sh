# SPDX-License-Identifier: GPL-2.0-or-later
# Client side of the putget case: apn-putget PUTs BYTES into the server's
# memory through the DMA request queue and GETs them back (completions reaped
# from the completion queue, contents checked); then, on this guest alone
# (loopback), apn-lib-test event read: event frames and remote reads. Then the
# counters.
# Arguments: HOST PORT BYTES.
. /scenarios/lib.sh
apn_routes_ip || exit 1
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
status=0
apn-putget -C "$1:$2" -b "$3" -t 120 || status=1
apn-lib-test event read || status=1
apn_counters
exit $status
