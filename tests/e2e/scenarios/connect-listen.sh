# SPDX-License-Identifier: GPL-2.0-or-later
# Listening side of a user-level connection (seed 004's CONNECT/ACCEPT): a
# trusted endpoint on PORT prints APN-READY (relayed to the connector), sleeps
# until CONNECT, aims its outgoing aperture at the connector's aperture through
# its user page, answers ACCEPT, prints the connector's message and stores
# REPLY back; then serves a reconnect (a CONNECT with a new nonce), storing one
# word with the stale nonce first, and stores REPLY2. Then the counters.
# Arguments: PORT MESSAGE_LENGTH REPLY REPLY2 (single words).
. /scenarios/lib.sh
apn_routes_ip || exit 1
apn-recv -L "$1" -l "$2" -m "$3" -R "$4" -t 150
status=$?
apn_counters
exit $status
