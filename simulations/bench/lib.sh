# Shell helpers the meshwork benchmarks share (sourced by throughput.sh and redundancy.sh).

# field KEY FILE → the value of KEY in a file of key=value lines (meshwork-bench-load's output).
field() { awk -F= -v k="$1" '$1 == k {print $2}' "$2"; }

# nodes_cpu_ticks DIR → user + system clock ticks of the nodes launch.sh started in DIR, summed.
nodes_cpu_ticks() {
  local f t=0 v
  for f in "$1"/n*.pid; do
    v=$(awk '{print $14 + $15}' "/proc/$(cat "$f")/stat" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
