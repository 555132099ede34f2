# SPDX-License-Identifier: GPL-2.0-or-later
# Connecting side of the failures case (the listener is fail-server.sh):
#   0. apn-kcm-test crash-dial to HOST:PORT+50 (the listener's APN-READY for it is
#      relayed to us first): an untrusted endpoint dials, stores a message and
#      dies by SIGKILL; our kernel must send the listener a CLOSE for us;
#   1. apn-stream to HOST:PORT, whose receiver kills itself after 300 messages:
#      we must report ECONNRESET (exit 1);
#   2. apn-pingpong to HOST:CLOSED_PORT, where nobody listens: no ACCEPT,
#      ETIMEDOUT after 3 s (exit 1);
#   3. apn-stream to HOST:PORT+1, killing ourselves (SIGKILL) after 300 messages;
#      then wait for the listener's APN-FAIL-DONE (relayed by the test bed): it
#      needs our NIC to answer its probe.
# Each step prints APN-FAIL-STEP name status=N; the script fails if a status is
# not the expected one. Then the counters.
# Arguments: HOST PORT CLOSED_PORT.
. /scenarios/lib.sh
apn_routes_ip || exit 1
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
status=0
step() { # NAME WANT GOT
	echo "APN-FAIL-STEP $1 status=$3"
	[ "$3" = "$2" ] || { echo "APN-FAIL-STEP $1: expected status $2"; status=1; }
}
# shellcheck disable=SC3045 # busybox sh has read -t
read -r -t 180 _ || echo "fail-client: no APN-READY from the close-wait listener"
apn-kcm-test crash-dial "$1" "$(($2 + 50))"
step kcm-crash 137 $?
apn-stream -C "$1:$2" -n 100000 -S 64-512 -i 2 -t 120
step survivor-sender 1 $?
apn-pingpong -C "$1:$3" -t 3
step closed-port 1 $?
apn-stream -C "$1:$(($2 + 1))" -n 100000 -S 64-512 -K 300 -t 120
step sender-crash 137 $?
# the listener probes our dead endpoint's aperture: stay up until it is done
# shellcheck disable=SC3045 # busybox sh has read -t
read -r -t 180 _ || echo "fail-client: no APN-FAIL-DONE from the listener"
apn_counters
exit $status
