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

# Connection messages travel as UDP/IPv4: guest K is 10.0.0.K, and every route
# carries the peer's IPv4 address too.
apn_routes_ip() {
	apnctl host-id "${APN_HOST:?}" "10.0.0.$APN_HOST" || return 1
	k=1
	while [ $k -le "${APN_GUESTS:-8}" ]; do
		apnctl route $k "$(printf '52:54:00:a7:00:%02x' $k)" "10.0.0.$k" || return 1
		k=$((k + 1))
	done
}
