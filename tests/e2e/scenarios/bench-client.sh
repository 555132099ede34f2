# SPDX-License-Identifier: GPL-2.0-or-later
# Client side of scripts/bench (needs scripts/testbed --virtio and bench-server.sh
# on the other guest): waits for the server's BENCH-SERVER-READY line on the
# console (relayed), then runs ROUNDS rounds; each round runs every test on every
# path, the order of the paths rotated from round to round. Prints
#   BENCH-ROUND R                  before each round
#   BENCH lat|rate|bw path=...     one line per measurement (the tools' output)
#   BENCH-NA test=T path=P why=... a path this build cannot measure (once)
#   BENCH-FAIL test=T path=P rc=N  a tool that failed
#   BENCH-CLIENT-DONE              at the end (relayed to the server: it stops)
# Paths: apn (apertnic user level: apn_pingpong, apn_rate), apn-lib (libapertnic's
# apn-pingpong example, raw mode) and apn-put (its apn-putget example) when the
# image has them, udp-virtio and tcp-virtio (kernel sockets over virtio-net),
# udp-apn0 (kernel sockets over apertnic's net_device, when the driver has one).
# Arguments (KEY=VALUE, lists joined by ':'):
#   rounds=3 sizes=8:64:256:1024:4096 n=1000 warmup=100 secs=3 tests=lat:rate:bw
. /scenarios/lib.sh
. /scenarios/bench-lib.sh

rounds=3 sizes=8:64:256:1024:4096 n=1000 warmup=100 secs=3 tests=lat:rate:bw
for a in "$@"; do
	case $a in
	rounds=* | sizes=* | n=* | warmup=* | secs=* | tests=*) eval "${a%%=*}=\${a#*=}" ;;
	*) echo "bench-client: unknown argument '$a'"; exit 2 ;;
	esac
done
sizes=$(echo "$sizes" | tr ':' ',')
tests=$(echo "$tests" | tr ':' ' ')

bench_quiet
bench_virtio_up || exit 1
bench_apn_up || exit 1
# shellcheck disable=SC3045 # busybox sh has read -t
if ! read -r -t 300 line; then
	echo "bench-client: no BENCH-SERVER-READY line on the console"
	exit 1
fi
echo "got: $line"
srv_host=$(echo "$line" | sed -n 's/.* host=\([0-9]*\).*/\1/p')
srv_virtio=$(echo "$line" | sed -n 's/.* virtio=\([0-9.]*\).*/\1/p')
srv_apn0=$(echo "$line" | sed -n 's/.* apn0=\([0-9a-z.]*\).*/\1/p')
srv_lib=$(echo "$line" | sed -n 's/.* lib=\([a-z:]*\).*/\1/p')
if [ -z "$srv_host" ] || [ -z "$srv_virtio" ]; then
	echo "bench-client: malformed BENCH-SERVER-READY line"
	exit 1
fi
ping -c 1 -W 5 "$srv_virtio" >/dev/null 2>&1 || echo "BENCH-WARN no ping reply over virtio-net"
apn0_ok=0
if [ "$BENCH_APN0" = 1 ] && [ "$srv_apn0" != none ] && [ -n "$srv_apn0" ]; then
	if ping -c 1 -W 5 "$srv_apn0" >/dev/null 2>&1; then
		apn0_ok=1
	else
		echo "BENCH-WARN no ping reply over apn0: its path is skipped"
	fi
fi
apn0_why="needs apertnic's kernel net_device apn0 (guest-driver/apertnic_netdev.c) in the driver"
[ "$BENCH_APN0" = 1 ] && apn0_why="apn0 did not answer a ping"
[ "$BENCH_APN0" = 1 ] && [ "$srv_apn0" = none ] && apn0_why="the server guest has no apn0"

status=0
# run TEST PATH COMMAND...: one measurement; failures are reported, not fatal
run() {
	t=$1 p=$2
	shift 2
	"$@"
	rc=$?
	if [ $rc != 0 ]; then
		echo "BENCH-FAIL test=$t path=$p rc=$rc"
		status=1
	fi
}

na_done=
na() { # TEST PATH WHY, printed once per test and path
	case " $na_done " in *" $1/$2 "*) return ;; esac
	na_done="$na_done $1/$2"
	echo "BENCH-NA test=$1 path=$2 why=$3"
}

# libapertnic's apn-pingpong example (-m raw: aperture stores, polled memory), one
# run per size, its line turned into ours. Its system calls are counted by the
# kernel (a perf counter on sys_enter); its interrupts are not measured ("n/a").
lib_pingpong() {
	for s in $(echo "$sizes" | tr ',' ' '); do
		sleep 0.3 # the server restarts between clients
		out=$(apn-pingpong -C "$srv_host:5003" -m raw -n "$n" -w "$warmup" -S "$s" -t 30)
		rc=$?
		echo "$out" | awk '/^APN-PINGPONG / {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			c = v["count"] ? v["count"] : 1
			sc = v["syscalls"] == "n/a" ? "n/a" : sprintf("%.2f", v["syscalls"] / c)
			printf "BENCH lat path=apn-lib size=%s n=%s median_us=%s p99_us=%s min_us=%s lost=0 syscalls_per_rt=%s ctxsw_per_rt=%.2f irqs_per_rt=n/a\n",
				v["size"], v["count"], v["median_us"], v["p99_us"], v["min_us"], sc, v["vol_ctxsw"] / c
			found = 1 }
			END { exit !found }' || rc=1
		if [ $rc != 0 ]; then
			echo "BENCH-FAIL test=lat path=apn-lib size=$s rc=$rc"
			status=1
		fi
	done
}

# libapertnic's apn-putget example: PUT of a registered 8 MiB buffer through the
# device's DMA queues (64 KiB requests, 16 outstanding), checked by the server.
# Only the put is measured: a failure of the example's later GET check is a
# warning (BENCH-WARN), not a failed put.
lib_put() {
	out=$(apn-putget -C "$srv_host:5004" -b 8388608 -c 65536 -q 16 -t 60)
	ex=$?
	rc=0
	echo "$out" | grep -q 'APN-PUTGET put-check .*match=yes' || rc=1
	echo "$out" | grep -q '^APN-PUTGET put .* errors=0 ' || rc=1
	[ $rc != 0 ] || [ $ex = 0 ] ||
		echo "BENCH-WARN apn-putget exited $ex after a good put (its GET phase failed; see above)"
	echo "$out" | awk '/^APN-PUTGET put / {
		for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		mb = v["bytes"] / 1e6
		sc = v["syscalls"] == "n/a" ? "n/a" : sprintf("%.2f", v["syscalls"] / mb)
		printf "BENCH bw path=apn-put secs=%.3f bytes=%s mbytes_per_s=%s write_bytes=65536 tx_syscalls_per_mb=%s tx_ctxsw_per_mb=%.2f errors=%s\n",
			mb / (v["MB_per_s"] ? v["MB_per_s"] : 1), v["bytes"], v["MB_per_s"], sc, v["vol_ctxsw"] / mb, v["errors"]
		found = 1 }
		END { exit !found }' || rc=1
	if [ $rc != 0 ]; then
		echo "BENCH-FAIL test=bw path=apn-put rc=$rc"
		status=1
	fi
}

one() { # TEST PATH
	case $1/$2 in
	lat/apn) run lat apn apn_pingpong -c "$srv_host" -z "$sizes" -n "$n" -w "$warmup" -l apn ;;
	lat/udp-virtio) run lat udp-virtio udp_pingpong -c "$srv_virtio" -z "$sizes" -n "$n" \
		-w "$warmup" -i virtio -l udp-virtio ;;
	lat/udp-apn0)
		if [ $apn0_ok = 1 ]; then
			run lat udp-apn0 udp_pingpong -c "$srv_apn0" -z "$sizes" -n "$n" -w "$warmup" \
				-i 'apertnic|apn' -l udp-apn0
		else
			na lat udp-apn0 "$apn0_why"
		fi ;;
	rate/apn) run rate apn apn_rate -c "$srv_host" -T "$secs" -l apn ;;
	rate/udp-virtio) run rate udp-virtio udp_rate -c "$srv_virtio" -T "$secs" -i virtio \
		-l udp-virtio ;;
	rate/udp-apn0)
		if [ $apn0_ok = 1 ]; then
			run rate udp-apn0 udp_rate -c "$srv_virtio" -d "$srv_apn0" -T "$secs" \
				-i 'apertnic|apn' -l udp-apn0
		else
			na rate udp-apn0 "$apn0_why"
		fi ;;
	bw/tcp-virtio) run bw tcp-virtio tcp_stream -c "$srv_virtio" -T "$secs" -i virtio -l tcp-virtio ;;
	lat/apn-lib)
		case $srv_lib in
		*pingpong:*) lib_pingpong ;;
		*) na lat apn-lib "needs libapertnic's apn-pingpong example in the image" ;;
		esac ;;
	bw/apn-put)
		case $srv_lib in
		*putget:*) lib_put ;;
		*) na bw apn-put "needs libapertnic's put (apn-putget example, device DMA queues) in the image" ;;
		esac ;;
	esac
}

# shellcheck disable=SC2034 # read through eval below
paths_lat="apn apn-lib udp-virtio udp-apn0"
# shellcheck disable=SC2034
paths_rate="apn udp-virtio udp-apn0"
# shellcheck disable=SC2034
paths_bw="apn-put tcp-virtio"
r=1
while [ $r -le "$rounds" ]; do
	echo "BENCH-ROUND $r"
	for t in $tests; do
		eval "list=\$paths_$t"
		# rotate the order by the round number: no path always goes first
		i=1
		while [ $i -lt "$r" ]; do
			first=${list%% *}
			list="${list#* } $first"
			i=$((i + 1))
		done
		for p in $list; do one "$t" "$p"; done
	done
	r=$((r + 1))
done
bench_irq_lines
apn_counters
echo "BENCH-CLIENT-DONE"
exit $status
