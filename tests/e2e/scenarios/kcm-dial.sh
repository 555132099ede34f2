# SPDX-License-Identifier: GPL-2.0-or-later
# Connecting side of the kernel_cm case: reads the listener's APN-READY line
# (host= port=) from the console, dials it from an UNTRUSTED endpoint (through
# the kernel), stores the message, prints the reply; reconnects with a new
# incoming aperture (new nonce), prints the second reply and the stale store's
# drop; closes with apn_out_aperture_close(). Then the counters.
# Arguments: the message (words joined by single spaces).
. /scenarios/lib.sh
apn_routes_ip || exit 1
# shellcheck disable=SC3045 # busybox sh has read -t
if ! read -r -t 180 line; then
	echo "kcm-dial: no APN-READY line on the console"
	exit 1
fi
host=$(echo "$line" | sed -n 's/.*APN-READY.* host=\([0-9]*\).*/\1/p')
port=$(echo "$line" | sed -n 's/.*APN-READY.* port=\([0-9]*\).*/\1/p')
if [ -z "$host" ] || [ -z "$port" ]; then
	echo "kcm-dial: malformed APN-READY line: $line"
	exit 1
fi
apn-kcm-test dial "$host" "$port" "$*"
status=$?
apn_counters
exit $status
