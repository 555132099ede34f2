# SPDX-License-Identifier: GPL-2.0-or-later
# Client side of the examples case: apn-pingpong over the message queue and
# over raw stores, one apn-rpc add (both endpoints untrusted: kernel connection
# management) and COUNT checked calls, against the servers
# of examples-server.sh on host HOST, PORT .. PORT+3. Then the counters.
# Arguments: HOST PORT COUNT.
. /scenarios/lib.sh
apn_routes_ip || exit 1
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
status=0
apn-pingpong -C "$1:$2" -n "$3" -S 64 -w 50 -t 120 || status=1
apn-pingpong -C "$1:$(($2 + 1))" -m raw -n "$3" -S 64 -w 50 -t 120 || status=1
apn-rpc --untrusted -C "$1:$(($2 + 2))" -t 120 add 2 40 || status=1
apn-rpc -C "$1:$(($2 + 3))" -t 120 -n "$3" || status=1
apn_counters
exit $status
