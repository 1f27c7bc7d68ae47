#!/usr/bin/env bash
# The fleet demo: three hosts on this machine, each in its own network namespace joined by
# veth links to a bridge (10.231.0.0/24 exists only inside those namespaces), one etcd,
# one `ferry agent` per host. Host A runs 5 self-verifying guests and replays the recorded
# SMART history of a Backblaze drive that failed (S1F052LZ, 2013-04-24); its agent ranks A
# at risk and live-migrates every guest to B and C. Prints the timelines and the fleet.
#   bash tools/scripts/fleet-demo.sh            # evacuation
#   bash tools/scripts/fleet-demo.sh --kill-b   # also SIGKILL B's agent mid-evacuation
# Needs root (namespaces) and /dev/kvm. Everything it creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
kill_b=0
case "${1:-}" in
  --kill-b) kill_b=1 ;;
  "") ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  *) echo "fleet-demo: unknown option '$1' (try --help)" >&2; exit 2 ;;
esac
if [[ $(id -u) -ne 0 ]]; then
  echo "fleet-demo: needs root (network namespaces)" >&2
  exit 1
fi

bash tools/scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target ferry ferry_test_guest
ferry=$root/build/tools/ferry
guest=$root/build/tests/guests/ferry-test-guest.bin
work=$(mktemp -d /tmp/ferry-fleet-demo.XXXXXX)
tag="ferrydemo$$"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  pkill -KILL -f "$work/host" 2>/dev/null || true
  for ns in a b c core; do ip netns del "$tag-$ns" 2>/dev/null || true; done
  echo "fleet-demo: cleaned up (logs kept in $work)"
}
trap cleanup EXIT

echo "== network: namespaces $tag-{core,a,b,c}, bridge 10.231.0.254/24 in core"
ip netns add "$tag-core"
ip -n "$tag-core" link add br0 type bridge
ip -n "$tag-core" link set br0 up
ip -n "$tag-core" link set lo up
ip -n "$tag-core" addr add 10.231.0.254/24 dev br0
i=1
for h in a b c; do
  ip netns add "$tag-$h"
  ip -n "$tag-core" link add "v$h" type veth peer name eth0 netns "$tag-$h"
  ip -n "$tag-core" link set "v$h" master br0 up
  ip -n "$tag-$h" link set lo up
  ip -n "$tag-$h" addr add "10.231.0.$i/24" dev eth0
  ip -n "$tag-$h" link set eth0 up
  i=$((i + 1))
done

echo "== etcd on 10.231.0.254:2379 (namespace $tag-core)"
ip netns exec "$tag-core" etcd --name demo --data-dir "$work/etcd" \
  --listen-client-urls http://10.231.0.254:2379 --advertise-client-urls http://10.231.0.254:2379 \
  --listen-peer-urls http://10.231.0.254:2380 --initial-advertise-peer-urls http://10.231.0.254:2380 \
  --initial-cluster demo=http://10.231.0.254:2380 >"$work/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "ready to serve client requests" "$work/etcd.log" && break; sleep 0.1; done

echo "== training a small disk model on the first 20 Backblaze days"
"$ferry" model train --max-days 20 --all-days --rounds 30 --out "$work/disk.json" 2>&1 | tail -1

common=(--etcd 10.231.0.254:2379 --model "$work/disk.json" --max-days 20 --poll-ms 500
        --lease-ttl 3 --receiver-timeout 8 --stop-guests-on-exit)
agent() {  # host address drive extra...
  local h=$1 addr=$2 drive=$3
  shift 3
  ip netns exec "$tag-$h" "$ferry" agent --name "host$h" --address "$addr" \
    --state-dir "$work/host$h" --timeline "$work/host$h.timeline" --replay-disk "$drive" \
    "${common[@]}" "$@" >"$work/host$h.out" 2>&1 &
  pids+=($!)
}
agent b 10.231.0.2 W1F09LPX --mem 1024 --cpus 8
agent c 10.231.0.3 S1F0CRDQ --mem 512 --cpus 8
b_pid=${pids[-2]}  # etcd, b, c
sleep 2
guests=()
for g in 1 2 3 4 5; do guests+=(--guest "g$g:32:1:wss=8 rate=20 pattern=random duration=40"); done
agent a 10.231.0.1 S1F052LZ --mem 1024 --cpus 8 --replay-lead 12 --guest-kernel "$guest" "${guests[@]}"

if ((kill_b)); then
  for _ in $(seq 600); do grep -q RECEIVING "$work/hostb.timeline" 2>/dev/null && break; sleep 0.1; done
  echo "== killing host B's agent (pid $b_pid) while a guest is on its way to it"
  kill -KILL "$b_pid"
fi
for _ in $(seq 1200); do grep -q HOST-DRAINED "$work/hosta.timeline" 2>/dev/null && break; sleep 0.1; done

echo; echo "== timeline of host A"; cat "$work/hosta.timeline"
echo; echo "== timelines of B and C"; cat "$work/hostb.timeline" "$work/hostc.timeline" 2>/dev/null | sort
echo; echo "== ferry fleet status"
ip netns exec "$tag-a" "$ferry" fleet status --etcd 10.231.0.254:2379
echo; echo "== waiting for every guest to finish its run and verify its memory"
for g in 1 2 3 4 5; do
  for _ in $(seq 900); do grep -qs "verify" "$work"/host*/g$g.serial && break; sleep 0.1; done
  grep -Hs "^verify" "$work"/host*/g$g.serial | sed "s|$work/||" || echo "g$g: no verdict yet"
done
