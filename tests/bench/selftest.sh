#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Host self-test of the guest benchmark tools (meson test suite 'bench'):
# every tool exits 2 on a bad flag, and the socket tools measure over the
# host's loopback (a few hundred round trips, 1 s windows) and print their
# BENCH lines. The apertnic tools need the device: only their usage is checked.
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

for t in udp_pingpong udp_rate tcp_stream apn_pingpong apn_rate; do
	"$dir/$t" --bogus >/dev/null 2>&1
	rc=$?
	if [ $rc = 2 ]; then echo "ok   $t: exit 2 on a bad flag"; else echo "FAIL $t: exit $rc on a bad flag"; fail=1; fi
done

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
