# SPDX-License-Identifier: GPL-2.0-or-later
# Receiver of the first slice: an incoming aperture on this process's memory.
# Prints APN-READY (relayed to the sender by the test bed), waits for the
# sender's bytes and prints them, then the device counters.
# Arguments: the message length the sender will write.
. /scenarios/lib.sh
apn_routes || exit 1
apn-recv -s 4096 -l "$1" -t 90
status=$?
apn_counters
exit $status
