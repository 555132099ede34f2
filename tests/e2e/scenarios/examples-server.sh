# SPDX-License-Identifier: GPL-2.0-or-later
# Server side of the examples case, one after the other: apn-pingpong echo
# servers on PORT (message queue) and PORT+1 (raw stores), apn-rpc servers on
# PORT+2 (an untrusted endpoint: the kernel sets the connection up) and
# PORT+3. tracefs is mounted so the programs can count their system
# calls. Then the counters.
# Arguments: PORT.
. /scenarios/lib.sh
apn_routes_ip || exit 1
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
status=0
apn-pingpong -L "$1" -t 120 || status=1
apn-pingpong -L "$(($1 + 1))" -m raw -t 120 || status=1
apn-rpc --untrusted -L "$(($1 + 2))" -t 120 || status=1
apn-rpc -L "$(($1 + 3))" -t 120 || status=1
apn_counters
exit $status
