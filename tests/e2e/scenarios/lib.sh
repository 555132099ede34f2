# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by scenarios: shared guest-side setup.

# scripts/testbed gives guest K host id K and MAC 52:54:00:a7:00:KK (hex).
apn_routes() {
	k=1
	while [ $k -le "${APN_GUESTS:-8}" ]; do
		apnctl route $k "$(printf '52:54:00:a7:00:%02x' $k)" || return 1
		k=$((k + 1))
	done
}

apn_counters() {
	echo "APN-COUNTERS-BEGIN ${APN_NAME:-guest}"
	apnctl counters
	echo "APN-COUNTERS-END"
}
