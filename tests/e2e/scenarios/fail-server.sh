# SPDX-License-Identifier: GPL-2.0-or-later
# Listening side of the failures case (the client is fail-client.sh):
#   0. apn-kcm-test close-wait on PORT+50 (untrusted; its APN-READY is relayed to
#      the client): prints the message the client's crash-dial stores, then must
#      get APN_EV_CLOSE with APN_EV_F_APERTURE from the client's kernel once the
#      client is killed;
#   1. an apn-stream receiver on PORT that kills itself (SIGKILL) after 300
#      messages: its sender must report the dead peer;
#   2. an apn-stream receiver on PORT+1 whose sender kills itself after 300
#      messages: we must report it (ECONNRESET after probing, exit 1); then
#      APN-FAIL-DONE, which the test bed relays to the client;
#   3. (no listener on CLOSED_PORT: the client's CONNECTs are dropped here and
#      reported to this OS, APN_EV_NO_PORT; counted below)
#   4. apn-lib-test overflow closed-port: a full event queue is reported as an
#      event; a CONNECT to a port of our own host nobody binds times out.
# Each step prints APN-FAIL-STEP name status=N; the script fails if a status is
# not the expected one. Then the driver's no-port count and the counters.
# Arguments: PORT.
. /scenarios/lib.sh
apn_routes_ip || exit 1
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
status=0
step() { # NAME WANT GOT
	echo "APN-FAIL-STEP $1 status=$3"
	[ "$3" = "$2" ] || { echo "APN-FAIL-STEP $1: expected status $2"; status=1; }
}
apn-kcm-test close-wait "$(($1 + 50))"
step kcm-peer-close 0 $?
apn-stream -L "$1" -K 300 -t 120
step receiver-crash 137 $?
apn-stream -L "$(($1 + 1))" -i 2 -t 120
step survivor-receiver 1 $?
# relayed to the client, which stays up until now: our probe needs its NIC
echo "APN-FAIL-DONE"
apn-lib-test overflow closed-port
step overflow 0 $?
for f in /sys/bus/pci/drivers/apertnic/*/no_port_events; do
	[ -f "$f" ] && echo "APN-NO-PORT-EVENTS $(cat "$f")"
done
apn_counters
exit $status
