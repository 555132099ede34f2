# SPDX-License-Identifier: GPL-2.0-or-later
# Server side of the putget case: apn-putget -L PORT exposes the region the
# client asks for, answers its checksum and invert requests. Then the counters.
# Arguments: PORT.
. /scenarios/lib.sh
apn_routes_ip || exit 1
status=0
apn-putget -L "$1" -t 120 || status=1
apn_counters
exit $status
