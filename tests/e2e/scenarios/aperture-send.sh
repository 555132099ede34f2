# SPDX-License-Identifier: GPL-2.0-or-later
# Sender of the first slice: reads the receiver's APN-READY line from the
# console, provokes one wrong-nonce and one out-of-bounds drop at the
# receiver, then stores the message through an outgoing aperture.
# Arguments: the message (words joined by single spaces).
. /scenarios/lib.sh
apn_routes || exit 1
apn-send -r -s 4096 -b -o "$*"
status=$?
apn_counters
exit $status
