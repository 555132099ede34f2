# SPDX-License-Identifier: GPL-2.0-or-later
# Connecting side of a user-level connection: reads the listener's APN-READY
# line (host= port=) from the console, connects to it (CONNECT until ACCEPT),
# stores the message into the listener's aperture, prints the reply, then
# reconnects with a new nonce on its own aperture and prints the second reply.
# Then the counters.
# Arguments: the message (words joined by single spaces).
. /scenarios/lib.sh
apn_routes_ip || exit 1
# shellcheck disable=SC3045 # busybox sh has read -t
if ! read -r -t 180 line; then
	echo "connect-dial: no APN-READY line on the console"
	exit 1
fi
host=$(echo "$line" | sed -n 's/.*APN-READY.* host=\([0-9]*\).*/\1/p')
port=$(echo "$line" | sed -n 's/.*APN-READY.* port=\([0-9]*\).*/\1/p')
if [ -z "$host" ] || [ -z "$port" ]; then
	echo "connect-dial: malformed APN-READY line: $line"
	exit 1
fi
apn-send -C "$host:$port" -R -t 150 "$*"
status=$?
apn_counters
exit $status
