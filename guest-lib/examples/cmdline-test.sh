#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The example programs' shared command line (apn_example.c), on the build
# machine without a device: --help, the reasons given for bad flags and values
# (exit 2), and that good command lines, --untrusted and -v included, get as far
# as opening the device (exit 1 naming it).
# Usage: cmdline-test.sh EXAMPLE... (the built apn-pingpong, apn-stream, ...)
set -u
[ $# -gt 0 ] || { echo "usage: $0 EXAMPLE..." >&2; exit 2; }
fail=0
out=/tmp/example-cmdline.$$
trap 'rm -f $out.1 $out.2' EXIT
nodev=/nonexistent/apertnic0

# expect RC STDERR_REGEX PROGRAM ARGS...: exit status RC and a stderr line matching
expect() {
	rc=$1 re=$2 prog=$3
	shift 3
	"$prog" "$@" >$out.1 2>$out.2
	got=$?
	if [ $got = "$rc" ] && grep -Eq -- "$re" $out.2; then
		echo "ok   ${prog##*/} $*: exit $rc"
	else
		echo "FAIL ${prog##*/} $*: exit $got (want $rc, stderr matching '$re'): $(head -c 300 $out.2)"
		fail=1
	fi
}

for e in "$@"; do
	name=${e##*/}
	if "$e" --help >$out.1 2>&1 && grep -q "^usage: $name -L PORT" $out.1 &&
		grep -q -- "--untrusted" $out.1 && grep -q -- "-d DEV" $out.1; then
		echo "ok   $name --help: usage on stdout, exit 0"
	else
		echo "FAIL $name --help: $(head -c 300 $out.1)"
		fail=1
	fi
	expect 2 "^$name: need exactly one of -L PORT and -C HOST:PORT" "$e"
	expect 2 "^$name: need exactly one of -L PORT and -C HOST:PORT" "$e" -L 5000 -C 2:5000
	expect 2 "^$name: bad PORT \(1\.\.65535\): 0" "$e" -L 0
	expect 2 "^$name: bad HOST:PORT: 2" "$e" -C 2
	expect 2 "^$name: bad TIMEOUT \(1\.\.86400 s\): 0" "$e" -L 5000 -t 0
	expect 2 "invalid option|unrecognized option" "$e" -L 5000 --bogus
	expect 1 "^$name: $nodev: No such file" "$e" -L 5000 -d $nodev
	call=
	[ "$name" != apn-rpc ] || call="add 1 2"
	# shellcheck disable=SC2086 # $call is split on purpose
	expect 1 "^$name: $nodev: No such file" "$e" -C 2:5000 -t 5 -d $nodev --untrusted -v $call
	case $name in
	apn-pingpong)
		expect 2 "^$name: bad MODE \(one of mq\|raw\): udp" "$e" -C 2:5000 -m udp
		expect 2 "^$name: bad COUNT \(1\.\.100000000\): 0" "$e" -C 2:5000 -n 0
		expect 2 "^$name: bad APERTURE \(power of two, 4096\.\.65536\): 5000" "$e" -L 5000 -s 5000
		expect 2 "^$name: BYTES must fit APERTURE - 64" "$e" -C 2:5000 -m raw -S 8192
		expect 2 "^$name: unexpected argument: extra" "$e" -L 5000 extra
		expect 1 "^$name: $nodev: " "$e" -C 2:5000 -m raw -n 300 -S 64 -w 50 -t 120 -d $nodev
		;;
	apn-stream)
		expect 2 "^$name: bad MIN\[-MAX\] \(MIN <= MAX, both 0\.\.1073741824\): 512-64" "$e" -C 2:5000 -S 512-64
		expect 2 "^$name: bad BATCH \(1\.\.1048576\): 0" "$e" -C 2:5000 -b 0
		expect 2 "^$name: MAX 4000 exceeds the largest message of a 4096-byte aperture" "$e" -C 2:5000 -S 0-4000 -s 4096
		expect 1 "^$name: $nodev: " "$e" -C 2:5000 -n 2000 -S 0-300 -r 11 -b 8 -s 4096 -t 120 -d $nodev
		expect 1 "^$name: $nodev: " "$e" -L 5000 -K 300 -i 2 -t 120 -d $nodev
		;;
	apn-rpc)
		expect 2 "^$name: a call is 'add A B'" "$e" -C 2:5000 sub 1 2
		expect 2 "^$name: A and B are signed 64-bit integers" "$e" -C 2:5000 add 1 x
		expect 2 "^$name: either -n COUNT or 'add A B'" "$e" -C 2:5000 -n 3 add 1 2
		expect 2 "^$name: -L takes no call" "$e" -L 5000 add 1 2
		expect 1 "^$name: $nodev: " "$e" -C 2:5000 -t 120 add 2 40 -d $nodev
		expect 1 "^$name: $nodev: " "$e" -C 2:5000 -t 120 -d $nodev -- add -5 3
		;;
	apn-putget)
		expect 2 "^$name: bad BYTES \(power of two, 4096\.\.16777216\): 1000" "$e" -C 2:5000 -b 1000
		expect 2 "^$name: bad DEPTH \(power of two, 2\.\.4096\): 3" "$e" -C 2:5000 -q 3
		expect 1 "^$name: $nodev: " "$e" -C 2:5000 -b 8388608 -c 65536 -q 16 -t 60 -d $nodev
		;;
	esac
done
exit $fail
