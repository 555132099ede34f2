# SPDX-License-Identifier: GPL-2.0-or-later
# Sending side of the message-queue case: 2000 messages of 1 to 4000 bytes to
# host HOST port PORT (64 KiB apertures, one apn_mq_send each), then 2000 of 0
# to 300 bytes to PORT+1 through 4 KiB apertures, published in batches of 8
# (apn_mq_write + apn_mq_flush). Then the counters.
# Arguments: HOST PORT.
. /scenarios/lib.sh
apn_routes_ip || exit 1
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
status=0
apn-stream -C "$1:$2" -n 2000 -S 1-4000 -r 7 -t 120 || status=1
apn-stream -C "$1:$(($2 + 1))" -n 2000 -S 0-300 -r 11 -b 8 -s 4096 -t 120 || status=1
apn_counters
exit $status
