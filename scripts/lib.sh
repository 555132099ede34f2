# SPDX-License-Identifier: GPL-2.0-or-later
# Shared settings and helpers for apertnic's scripts. Sourced, never run.

APERTNIC_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything built or fetched lives under build/ (git-ignored); downloads that are
# expensive to repeat (QEMU source, kernel packages) are kept in a machine-wide cache
# so a fresh clone on the same machine does not fetch them again.
APERTNIC_BUILD=${APERTNIC_BUILD:-$APERTNIC_TOP/build}
APERTNIC_CACHE=${APERTNIC_CACHE:-/var/cache/apertnic}

# The upstream QEMU release the overlay was written for. A fetched source whose
# major.minor differs is refused: device APIs change between minor releases.
QEMU_PINNED_VERSION=10.0
QEMU_SRC=$APERTNIC_BUILD/qemu-src
QEMU_BUILD=$APERTNIC_BUILD/qemu-build
QEMU_BIN=$QEMU_BUILD/qemu-system-x86_64
FIRMWARE_DIR=$APERTNIC_BUILD/firmware
# The meson build of the top-level meson.build: libapertnic and its tools, the unit
# tests, the e2e test programs. Debian's meson (the pyenv Python may lack it).
HOST_BUILD=$APERTNIC_BUILD/host
MESON=${MESON:-/usr/bin/meson}
GUEST_DIR=$APERTNIC_BUILD/guest

stage() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run as root directly, or through sudo when available.
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
