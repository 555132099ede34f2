#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Host self-test of the guest benchmark tools (meson test suite 'bench'):
# every tool exits 2, saying why, on a bad command line, and the socket tools
# measure over the host's loopback (a few hundred round trips, 1 s windows) and
# print their BENCH lines. The apertnic tools need the device: only their
# command line is checked.
# Usage: selftest.sh DIR (the build directory holding the tools)
set -u
dir=${1:?usage: selftest.sh DIR}
fail=0
pids=
# shellcheck disable=SC2317 # reached through the trap
cleanup() {
	# shellcheck disable=SC2086 # the pids are split on purpose
	[ -z "$pids" ] || kill $pids 2>/dev/null
}
trap cleanup EXIT
check() { # WHAT COMMAND...: runs it, stdout kept in $out
	what=$1
	shift
	if out=$("$@" 2>/tmp/bench-selftest.$$); then
		:
	else
		echo "FAIL $what: exit $? ($(head -c 300 /tmp/bench-selftest.$$))"
		fail=1
	fi
	rm -f /tmp/bench-selftest.$$
}
expect() { # WHAT REGEX
	if echo "$out" | grep -Eq "$2"; then
		echo "ok   $1"
	else
		echo "FAIL $1: no line matching '$2' in: $out"
		fail=1
	fi
}

# usage_error WHAT REGEX TOOL ARGS...: exit 2 with a stderr line matching REGEX
usage_error() {
	what=$1 re=$2 tool=$3
	shift 3
	"$dir/$tool" "$@" >/dev/null 2>/tmp/bench-selftest.$$
	rc=$?
	if [ $rc = 2 ] && grep -Eq -- "$re" /tmp/bench-selftest.$$; then
		echo "ok   $tool: exit 2 on $what"
	else
		echo "FAIL $tool: exit $rc on $what ($(head -c 300 /tmp/bench-selftest.$$))"
		fail=1
	fi
	rm -f /tmp/bench-selftest.$$
}

for t in udp_pingpong udp_rate tcp_stream apn_pingpong apn_rate; do
	usage_error "a bad flag" "^usage: $t " $t --bogus
	usage_error "-s with -c" "^$t: need exactly one of -s and -c HOST" $t -s -c 1
	usage_error "neither -s nor -c" "^$t: need exactly one of -s and -c HOST" $t
	usage_error "an argument" "^$t: unexpected argument: extra" $t -s extra
	usage_error "a bad limit" "^$t: bad -t SECS \(1\.\.86400\): 0" $t -s -t 0
done
usage_error "a bad port" "^udp_pingpong: bad -p PORT \(1\.\.65535\): 0" udp_pingpong -s -p 0
usage_error "bad sizes" "^udp_pingpong: bad -z SIZES .*: 8,4" udp_pingpong -c 127.0.0.1 -z 8,4
usage_error "a bad address" "^udp_pingpong: bad IPv4 address 1.2.3" udp_pingpong -c 1.2.3
usage_error "a bad size" "^udp_rate: bad -z SIZE \(8\.\.65000\): 8,16" udp_rate -c 127.0.0.1 -z 8,16
usage_error "a bad write size" "^tcp_stream: bad -b BYTES \(1\.\.1048576\): 0" tcp_stream -c 127.0.0.1 -b 0
usage_error "a bad port" "^apn_pingpong: bad -P PORT \(1\.\.65535\): 0" apn_pingpong -s -P 0
usage_error "a bad host" "^apn_rate: bad -c HOST .*: x" apn_rate -c x
usage_error "a bad fence count" "^apn_rate: bad -f EVERY \(0\.\.1000000\): -1" apn_rate -c 2 -f -1

base=$((20000 + $$ % 20000))
"$dir/udp_pingpong" -s -p $base -t 60 >/dev/null & pids="$pids $!"
"$dir/udp_rate" -s -p $((base + 1)) -t 60 >/dev/null & pids="$pids $!"
"$dir/tcp_stream" -s -p $((base + 2)) -t 60 >/dev/null & pids="$pids $!"
sleep 0.5
check udp_pingpong "$dir/udp_pingpong" -c 127.0.0.1 -p $base -z 8,1024 -n 200 -w 10 -i lo -l lo -t 30
expect udp_pingpong '^BENCH lat path=lo size=1024 n=200 median_us=[0-9.]+ .* syscalls_per_rt=2\.00 '
check udp_rate "$dir/udp_rate" -c 127.0.0.1 -p $((base + 1)) -T 1 -i lo -l lo -t 30
expect udp_rate '^BENCH rate path=lo size=50 .* delivered=[1-9][0-9]* .*tx_syscalls_per_msg=1\.000 '
check tcp_stream "$dir/tcp_stream" -c 127.0.0.1 -p $((base + 2)) -T 1 -i lo -l lo -t 30
expect tcp_stream '^BENCH bw path=lo secs=[0-9.]+ bytes=[1-9][0-9]* mbytes_per_s=[0-9.]+ '
exit $fail
