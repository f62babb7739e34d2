#!/usr/bin/env bash
# Chaos run over real meshwork nodes: load, faults from a seed, heal, then a verdict (lost = 0?).
#
#   simulations/chaos.sh [--nodes 5] [--duration 60] [--seed 1] [--rate 10]
#                        [--faults kill,pause,restart,partition[,lie][,forge]] [--report FILE]
#                        [--redundancy-share F] [--unsafe] [--settle S] [--bin PATH]
#                        [--run-dir DIR] [--base-port P] ...
#
# Prints a summary and writes a JSON report and an SVG timeline (docs/chaos.md explains them).
# `lie`/`forge` start one node each with --test-break lie/forge and submit a share of the jobs
# with redundancy 3; the report then says whether a wrong result was accepted and liars detected.
# Exit status 0 when no acknowledged job was lost, no node exited by itself, all nodes agree and
# no job with redundancy 3 succeeded with a wrong result.
# As root, each node gets its own network namespace (partitions are real: the cut nodes' veths
# move to another bridge); every namespace this run made is removed on exit, even on failure.
# Where namespaces are refused it says so, runs every node on 127.0.0.1 and skips partitions.
# `simulations/chaos.sh --help` lists every flag.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
driver="$here/chaos/driver.py"
prefix="mwc$$"
hub="$prefix-hub"

cleanup() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
}

case " $* " in
  *" -h "*|*" --help "*) exec python3 "$driver" --help ;;
esac

if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && ip netns add "$hub" 2>/dev/null; then
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  rc=0
  ip netns exec "$hub" python3 -u "$driver" --netns-prefix "$prefix" "$@" || rc=$?
  exit $rc
fi
echo "chaos: network namespaces refused (need root and 'ip netns add'); nodes run on loopback" >&2
exec python3 -u "$driver" "$@"
