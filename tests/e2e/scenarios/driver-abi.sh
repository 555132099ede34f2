# SPDX-License-Identifier: GPL-2.0-or-later
# The driver's ioctl/mmap ABI, tested directly (no libapertnic): runs
# apn-abi-test (tests/e2e/progs) as root; it drops to an unprivileged user in a
# child for the EPERM/RLIMIT_MEMLOCK checks. Needs this guest's two NICs wired
# to each other (scripts/testbed --nics 2, one guest). apn-abi-test unbinds
# NIC 0 at its end; then the module must unload, reload (binding both NICs
# again) and unload cleanly, without a kernel warning.
status=0
apn-abi-test || status=1
if rmmod apertnic && insmod /lib/modules/apertnic.ko && [ -c /dev/apertnic0 ] &&
	[ -c /dev/apertnic1 ] && rmmod apertnic; then
	echo "APN-ABI-RELOAD ok"
else
	echo "APN-ABI-RELOAD failed"
	status=1
fi
if dmesg | grep -E 'WARNING|BUG|Oops|Call Trace|general protection'; then
	echo "APN-ABI kernel complained (above)"
	status=1
fi
exit $status
