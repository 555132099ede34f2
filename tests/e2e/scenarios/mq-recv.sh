# SPDX-License-Identifier: GPL-2.0-or-later
# Receiving side of the message-queue case: two apn-stream receivers, one after
# the other, on PORT and PORT+1 (the second with 4 KiB apertures: a small ring,
# so flow control and wrap are exercised hard). Each checks every message and
# prints its count, bytes and checksum. Then the counters.
# Arguments: PORT.
. /scenarios/lib.sh
apn_routes_ip || exit 1
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
status=0
apn-stream -L "$1" -t 120 || status=1
apn-stream -L "$(($1 + 1))" -s 4096 -t 120 || status=1
apn_counters
exit $status
