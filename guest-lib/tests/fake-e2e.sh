#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# End-to-end run of apn-recv | apn-send (and apnctl) against tests/fake_dev.c.
# usage: fake-e2e.sh APNCTL APN_RECV APN_SEND   (the tools linked with fake_dev.c;
# guest-lib/meson.build builds them as fake-apnctl, fake-apn-recv, fake-apn-send)
set -u
[ $# = 3 ] || { echo "usage: $0 APNCTL APN_RECV APN_SEND" >&2; exit 2; }
APNCTL=$1 APN_RECV=$2 APN_SEND=$3
DEV=/fake/apertnic0
export APN_FAKE_DIR=$(mktemp -d /tmp/apn-fake.XXXXXX)
trap 'rm -rf "$APN_FAKE_DIR"' EXIT
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# start apn-recv with "$@", wait for its APN-READY line
start_recv() {
	rm -f "$APN_FAKE_DIR"/in_* "$APN_FAKE_DIR"/nonce_* "$APN_FAKE_DIR"/size_* \
	      "$APN_FAKE_DIR"/drops_*
	: >"$APN_FAKE_DIR/recv.out"   # not the previous run's APN-READY line
	"$APN_RECV" -d $DEV "$@" >"$APN_FAKE_DIR/recv.out" 2>"$APN_FAKE_DIR/recv.err" &
	RECV=$!
	i=0
	while ! grep -q '^APN-READY ' "$APN_FAKE_DIR/recv.out" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 100 ] && { bad "no APN-READY"; return 1; }
		sleep 0.05
	done
}

# 1. plain message through -r, lengths agree
start_recv -l 11 -t 5
grep APN-READY "$APN_FAKE_DIR/recv.out" | "$APN_SEND" -d $DEV -r "hello world" \
	>"$APN_FAKE_DIR/send.out" 2>&1 || bad "apn-send -r: $(cat "$APN_FAKE_DIR/send.out")"
wait $RECV; rc=$?
[ $rc = 0 ] && grep -qx 'APN-SENT len=11' "$APN_FAKE_DIR/send.out" &&
grep -qx 'APN-RECEIVED len=11 hex=68656c6c6f20776f726c64 text=hello world' "$APN_FAKE_DIR/recv.out" &&
	ok "send -r / recv" || bad "send -r / recv (rc=$rc): $(cat "$APN_FAKE_DIR/recv.out" "$APN_FAKE_DIR/recv.err")"

# 2. explicit -h -i -n, given nonce, small size; -b and -o provoke drops only
start_recv -s 64 -n 0x1234 -l 3 -t 5
line=$(grep APN-READY "$APN_FAKE_DIR/recv.out")
echo "$line" | grep -q ' nonce=0x00001234$' || bad "given nonce not used: $line"
idx=$(echo "$line" | sed 's/.*in_index=\([0-9]*\).*/\1/')
"$APN_SEND" -d $DEV -h 1 -i "$idx" -n 0x1234 -s 64 -b -o "abc" >/dev/null 2>&1 || bad "apn-send -b -o"
wait $RECV; rc=$?
[ $rc = 0 ] && grep -qx 'APN-RECEIVED len=3 hex=616263 text=abc' "$APN_FAKE_DIR/recv.out" &&
	ok "send -h -i -n -s 64 -b -o" || bad "send -b -o (rc=$rc): $(cat "$APN_FAKE_DIR/recv.out" "$APN_FAKE_DIR/recv.err")"
[ "$(cat "$APN_FAKE_DIR/drops_nonce_0" 2>/dev/null)" = 1 ] && ok "-b: one nonce drop" || bad "-b"
[ "$(cat "$APN_FAKE_DIR/drops_bounds_0" 2>/dev/null)" = 1 ] && ok "-o: one bounds drop" || bad "-o"

# 2b. the done word disagrees with -l
start_recv -l 5 -t 5
grep APN-READY "$APN_FAKE_DIR/recv.out" | "$APN_SEND" -d $DEV -r "abc" >/dev/null 2>&1
wait $RECV; rc=$?
[ $rc = 1 ] && grep -qx 'APN-RECEIVED len=3 hex=616263 text=abc' "$APN_FAKE_DIR/recv.out" &&
grep -q 'expected 5 bytes' "$APN_FAKE_DIR/recv.err" &&
	ok "length mismatch detected" || bad "length mismatch (rc=$rc): $(cat "$APN_FAKE_DIR/recv.out" "$APN_FAKE_DIR/recv.err")"

# 3. timeout
start_recv -t 1 -l 4
wait $RECV; rc=$?
[ $rc = 1 ] && grep -q 'timed out' "$APN_FAKE_DIR/recv.err" && ok "timeout" || bad "timeout (rc=$rc)"

# 4. wrong nonce only: the receiver sees nothing
start_recv -t 1 -n 7
"$APN_SEND" -d $DEV -h 1 -i 0 -n 8 "x" >/dev/null 2>&1
wait $RECV; rc=$?
[ $rc = 1 ] && ok "wrong nonce not delivered" || bad "wrong nonce delivered"

# 5. apnctl
"$APNCTL" -d $DEV counters >"$APN_FAKE_DIR/c.out" 2>&1 &&
	head -1 "$APN_FAKE_DIR/c.out" | grep -qx 'tx_frames 1000' &&
	grep -qx 'irqs 1030' "$APN_FAKE_DIR/c.out" &&
	[ $(wc -l <"$APN_FAKE_DIR/c.out") -ge 31 ] && ok "apnctl counters" || bad "apnctl counters"
"$APNCTL" -d $DEV info | grep -qx 'mac 52:54:00:12:34:56' && ok "apnctl info" || bad "apnctl info"
"$APNCTL" -d $DEV route 2 52:54:00:00:00:02 && "$APNCTL" -d $DEV route 2 clear &&
	"$APNCTL" -d $DEV host-id 7 && ok "apnctl route/host-id" || bad "apnctl route/host-id"
"$APNCTL" -d $DEV route 2 52:54:00:00:00:02 10.0.0.2 && "$APNCTL" -d $DEV host-id 7 10.0.0.7 &&
	"$APNCTL" -d $DEV info | grep -qx 'ip 0.0.0.0' && ok "apnctl IPv4 forms" || bad "apnctl IPv4 forms"
"$APNCTL" -d $DEV host-id 7 0.0.0.0 2>/dev/null; rc1=$?
"$APNCTL" -d $DEV route 2 clear 10.0.0.2 2>/dev/null; rc2=$?
"$APNCTL" -d $DEV route 2 52:54:00:00:00:02 10.0.0.256 2>/dev/null; rc3=$?
[ $rc1 = 2 ] && [ $rc2 = 2 ] && [ $rc3 = 2 ] && ok "apnctl bad IPv4 forms: usage" ||
	bad "apnctl bad IPv4 forms ($rc1 $rc2 $rc3)"

[ $fails = 0 ] && echo "fake-e2e: all passed" || echo "fake-e2e: $fails failed"
[ $fails = 0 ]
