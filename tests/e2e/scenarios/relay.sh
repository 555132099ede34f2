# SPDX-License-Identifier: GPL-2.0-or-later
# Checks the testbed's --relay plumbing without any network traffic.
#   relay.sh announce [SECS]  after SECS (default 0) prints "APN-READY host=<id> token=<n>"
#   relay.sh await [SECS]     reads one line from the console (default wait 60 s),
#                             prints it as "got: ..."; exits 0 if it is an APN-READY line
case ${1:-} in
announce)
	sleep "${2:-0}"
	echo "APN-READY host=${APN_HOST:-0} token=$$"
	;;
await)
	# shellcheck disable=SC3045 # busybox sh has read -t
	if read -r -t "${2:-60}" line; then
		echo "got: $line"
		case $line in APN-READY*) exit 0 ;; esac
		exit 1
	fi
	echo "nothing received"
	exit 2
	;;
*)
	echo "usage: relay.sh announce|await [SECS]"
	exit 64
	;;
esac
