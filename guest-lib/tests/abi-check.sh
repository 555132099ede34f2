#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# ABI checks on the built library and tools (tests in guest-lib/meson.build):
#   abi-check.sh soname LIB SONAME   LIB's DT_SONAME is SONAME
#   abi-check.sh exports LIB         LIB exports nothing but apn_* (libapertnic.map)
#   abi-check.sh static TOOL         TOOL has no NEEDED entry (the guest has no libc.so)
#   abi-check.sh usage-exit TOOL     TOOL exits 2 on an unknown flag
set -u
what=${1:?usage: $0 soname|exports|static|usage-exit FILE [SONAME]}
f=${2:?usage: $0 $what FILE}
case $what in
soname)
	want=${3:?usage: $0 soname LIB SONAME}
	readelf -d "$f" | grep -q "SONAME.*\[$want\]" ||
		{ echo "$f: SONAME is not $want"; exit 1; }
	;;
exports)
	bad=$(nm -D --defined-only "$f" | awk '$2 ~ /[TDBR]/ && $3 !~ /^apn_/ {print $3}')
	[ -z "$bad" ] || { echo "$f: unexpected exports:" $bad; exit 1; }
	;;
static)
	readelf -d "$f" 2>/dev/null | grep -q NEEDED &&
		{ echo "$f is not static:"; readelf -d "$f" | grep NEEDED; exit 1; }
	;;
usage-exit)
	"$f" -Z >/dev/null 2>&1
	rc=$?
	[ $rc = 2 ] || { echo "$f: bad flag exits $rc, not 2"; exit 1; }
	;;
*)
	echo "$0: unknown check '$what'" >&2
	exit 2
	;;
esac
echo "ok $what ${f##*/}"
