# SPDX-License-Identifier: GPL-2.0-or-later
# Listening side of the kernel_cm case: an UNTRUSTED endpoint on PORT (no
# APN_ENDPOINT_F_TRUSTED: the kernel sets its connections up) prints APN-READY
# (relayed to the connector), accepts through the kernel, prints the message,
# stores REPLY1; accepts the reconnect, stores a word with the stale nonce, then
# REPLY2; waits for the connector's orderly CLOSE. Then the counters.
# Arguments: PORT REPLY1 REPLY2 (single words).
. /scenarios/lib.sh
apn_routes_ip || exit 1
apn-kcm-test listen "$1" "$2" "$3"
status=$?
apn_counters
exit $status
