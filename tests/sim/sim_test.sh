#!/usr/bin/env bash
# Checks meshwork-sim end to end (docs/simulation.md): a batch of seeds keeps every invariant; a
# seed replays byte for byte; and deliberately broken runs make the checker fail with the seed.
# Usage: sim_test.sh SIM_BINARY batch|replay|breaks
set -euo pipefail
sim=$1
mode=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

fail() { echo "FAILED: $*"; exit 1; }

case $mode in
  batch)
    "$sim" --nodes 40 --seeds 1..4 --duration 20 --jobs 100 --quiet | tee "$out/batch"
    grep -q '^4 of 4 seeds passed$' "$out/batch" || fail "some seeds broke an invariant"
    [ "$(grep -c '^PASS seed=' "$out/batch")" = 4 ] || fail "expected four PASS lines"
    # Priorities and delayed jobs through the same faults: no delayed job starts early (not-early).
    "$sim" --nodes 40 --seeds 1..2 --duration 20 --jobs 100 --priorities --delayed 0.3 --quiet |
      tee "$out/delayed"
    grep -q '^2 of 2 seeds passed$' "$out/delayed" || fail "a seed with delayed jobs broke one"
    # Crashed members reaped mid-run (--reap-after-s 5): their tokens leave every ring, one comes
    # back and gets them again, and no job is lost.
    "$sim" --nodes 40 --seeds 1..2 --duration 20 --jobs 100 --reap-after-s 5 --quiet | tee "$out/reap"
    grep -q '^2 of 2 seeds passed$' "$out/reap" || fail "a seed with reaping broke an invariant"
    "$sim" --nodes 40 --seed 1 --duration 20 --jobs 100 --reap-after-s 5 --verbose > "$out/reaped"
    grep -q 'member_reaped' "$out/reaped" || fail "no member was reaped"
    # One node's wall clock an hour ahead and one's an hour behind, through the same faults: leases
    # and retries are timed on each core's monotonic clock, so nothing stalls (jobs-terminal).
    "$sim" --nodes 40 --seeds 1..2 --duration 20 --jobs 100 --clock-offset 3600000 --quiet |
      tee "$out/offset"
    grep -q '^2 of 2 seeds passed$' "$out/offset" || fail "a seed with a clock an hour off broke one"
    # Retention short enough to erase jobs during the faults: nothing acknowledged and not yet
    # expired is lost, no erased job comes back (no-resurrection, jobs-converge), none is erased
    # before it finished plus the retention (not-erased-early).
    "$sim" --nodes 40 --seeds 1..2 --duration 20 --jobs 100 --retain 5 --quiet | tee "$out/retain"
    grep -q '^2 of 2 seeds passed$' "$out/retain" || fail "a seed with retention broke one"
    # Seeds that once left a stale copy behind (jobs-converge): 12, a node erased a job it still
    # owed as a hint to a replica holding it `running`; 43, a copy replayed to a node back from a
    # crash had no anti-entropy partner to learn from that the job was erased.
    for seed in 12 43; do
      "$sim" --nodes 40 --seed "$seed" --duration 20 --jobs 100 --retain 5 --quiet |
        tee "$out/retain-$seed"
      grep -q "^PASS seed=$seed " "$out/retain-$seed" || fail "retention seed $seed broke one"
    done
    # A seed that once lost a join for good (dead-detected): the one alive about n8 sent to n1 was
    # lost and its retransmits ran out; n1 acked 16 pings from n8 without learning who sent them,
    # ignored the suspect and dead notices about a member it did not know, and never knew n8.
    # A ping names its sender now, and a node pinged by a member it does not know pulls its state.
    "$sim" --nodes 10 --seed 15 --duration 30 --jobs 500 --cancels 0.1 --retries 1 --quiet |
      tee "$out/join-15"
    grep -q '^PASS seed=15 ' "$out/join-15" || fail "missed-join seed 15 broke an invariant"
    "$sim" --nodes 40 --seed 3 --duration 20 --jobs 100 --retain 5 | tee "$out/retain3"
    grep -Eq '^retention: [1-9][0-9]* acknowledged jobs expired' "$out/retain3" ||
      fail "no job expired with a 5 s retention"
    # Dead letters retried through the same faults: half the jobs cancelled, every cancel answered
    # ok followed by a retry; a retry answered ok is never undone (retry-kept) and every job ends.
    "$sim" --nodes 40 --seeds 1..2 --duration 20 --jobs 100 --cancels 0.5 --retries 1 --quiet |
      tee "$out/retries"
    grep -q '^2 of 2 seeds passed$' "$out/retries" || fail "a seed with retries broke an invariant"
    "$sim" --nodes 40 --seed 1 --duration 20 --jobs 100 --cancels 0.5 --retries 1 > "$out/retried"
    grep -Eq '^clients: .* [1-9][0-9]* retries \([1-9][0-9]* ok' "$out/retried" ||
      fail "no retry was answered ok"
    # Redundant jobs (k = 3, half of them) with two lying nodes through the same faults: every job
    # that succeeded with fewer liars than a majority among its runners has the honest result
    # (honest-result), every job ends, and the honest nodes come to distrust the liars.
    "$sim" --nodes 20 --seeds 1..2 --duration 20 --jobs 300 --redundancy 0.5 --liars 2 --quiet |
      tee "$out/liars"
    grep -q '^2 of 2 seeds passed$' "$out/liars" || fail "a seed with liars broke an invariant"
    "$sim" --nodes 20 --seed 5 --duration 20 --jobs 300 --redundancy 0.5 --liars 2 > "$out/lied"
    grep -Eq '^redundancy: .* [1-9][0-9]* co-runs, verdicts [1-9][0-9]* decided' "$out/lied" ||
      fail "no co-run, or no verdict decided"
    grep -Eq '^liars: n[0-9]+ distrusted by [1-9][0-9]* of' "$out/lied" || fail "no liar distrusted"
    ;;
  replay)
    # Replay is about the bytes, whatever the verdict: a failing seed must replay too.
    "$sim" --nodes 60 --seed 42 --duration 20 --jobs 100 > "$out/a" || true
    "$sim" --nodes 60 --seed 42 --duration 20 --jobs 100 > "$out/b" || true
    "$sim" --nodes 60 --seed 43 --duration 20 --jobs 100 > "$out/c" || true
    cmp "$out/a" "$out/b" || fail "the same seed gave different output"
    # With redundant jobs and liars too (co-runs, verdicts, distrust).
    lying=(--nodes 20 --seed 5 --duration 20 --jobs 300 --redundancy 0.5 --liars 2)
    "$sim" "${lying[@]}" > "$out/r1" || true
    "$sim" "${lying[@]}" > "$out/r2" || true
    cmp "$out/r1" "$out/r2" || fail "the same seed with liars gave different output"
    ! cmp -s "$out/a" "$out/c" || fail "different seeds gave identical output"
    # The record cache only saves reads: no cache, and one far smaller than what a node holds (the
    # backlog policy: unfinished records first, oldest first), give the same trace.
    "$sim" "${lying[@]}" --record-cache 0 > "$out/r3" || true
    "$sim" "${lying[@]}" --record-cache 8 > "$out/r4" || true
    cmp "$out/r1" "$out/r3" || fail "the trace changed without the record cache"
    cmp "$out/r1" "$out/r4" || fail "the trace changed with a small record cache"
    grep -q 'trace digest' "$out/a" || fail "no trace digest printed"
    grep -q '^lost=[0-9]*$' "$out/a" || fail "no lost= line printed"
    # The stall scenario replays too (queued inputs, lease-expiry takeover).
    "$sim" --scenario stall --nodes 20 --seed 7 --duration 30 --stall 20 --jobs 100 > "$out/d" || true
    "$sim" --scenario stall --nodes 20 --seed 7 --duration 30 --stall 20 --jobs 100 > "$out/e" || true
    cmp "$out/d" "$out/e" || fail "the same stall seed gave different output"
    # A stalled owner's running job is taken over by lease expiry and finishes on another node:
    # the failover figures count it and name the lease as what the taker waited for.
    "$sim" --scenario stall --nodes 20 --seed 2 --duration 30 --jobs 100 > "$out/f" || true
    "$sim" --scenario stall --nodes 20 --seed 2 --duration 30 --jobs 100 > "$out/g" || true
    cmp "$out/f" "$out/g" || fail "the failover figures differ between two runs"
    grep -Eq '^failover: [1-9][0-9]* jobs caught' "$out/f" || fail "no failover measured"
    grep -q 'stall n[0-9]* at .*waited for lease expiry' "$out/f" || fail "no lease-expiry takeover"
    ;;
  breaks)
    # A node that never receives is declared dead while it is up and reachable (invariant 2), and
    # its own view never catches up (invariant 3).
    set +e
    "$sim" --nodes 20 --seed 3 --duration 10 --settle-max 20 --jobs 100 --quiet --break deaf-node > "$out/deaf"
    rc=$?
    set -e
    cat "$out/deaf"
    [ $rc = 1 ] || fail "a deaf node did not fail the run (exit $rc)"
    grep -q '^FAIL seed=3 nodes=20 invariant=no-false-deaths: .* reachable n1 dead' "$out/deaf" ||
      fail "the false death of n1 went unreported"
    grep -q '^FAIL seed=3 nodes=20 invariant=agreement' "$out/deaf" || fail "n1's view passed"
    # Cores that never take a job over leave the jobs of a crashed owner running forever: the
    # acknowledged jobs it was running never finish (invariant 5), or are lost (invariant 4).
    set +e
    "$sim" --nodes 20 --seed 4 --duration 20 --crashes 4 --settle-max 60 --quiet \
      --break no-takeover > "$out/nt"
    rc=$?
    set -e
    cat "$out/nt"
    [ $rc = 1 ] || fail "no takeover did not fail the run (exit $rc)"
    grep -Eq '^FAIL seed=4 nodes=20 invariant=(jobs-terminal|no-lost-jobs)' "$out/nt" ||
      fail "wrong verdict"
    # Peers that decode every record without its retry round: a retry answered ok reaches no other
    # core, so the merged copies stay in round 0 (invariant 11). The same flags without it pass.
    retry_flags=(--nodes 20 --seed 3 --duration 20 --jobs 100 --cancels 1 --retries 1 --settle-max 60
                 --quiet)
    "$sim" "${retry_flags[@]}" > "$out/kept" || { cat "$out/kept"; fail "retries failed unbroken"; }
    set +e
    "$sim" "${retry_flags[@]}" --break drop-round > "$out/dr"
    rc=$?
    set -e
    cat "$out/dr"
    [ $rc = 1 ] || fail "dropping the retry round did not fail the run (exit $rc)"
    grep -q '^FAIL seed=3 nodes=20 invariant=retry-kept: ' "$out/dr" || fail "retry-kept passed"
    ;;
  *)
    fail "unknown mode $mode"
    ;;
esac
echo "ok: $mode"
