"""The fault schedule of a chaos run: a pure function of the seed and the run's parameters.

Kinds (each picks its targets among the nodes healthy at its start):
  kill       kill -9; when `restart` is also chosen the node comes back on the same data dir after
             3–10 s, otherwise it stays down for the rest of the run (permanent).
  pause      SIGSTOP for 2–8 s, then SIGCONT.
  restart    SIGTERM (graceful stop), and start again on the same data dir 1 s later.
  partition  cut 1..k nodes off from the rest for 3–10 s (cluster.py says how), then heal.
Safety (unless `unsafe`): at no moment are more than R−1 nodes faulty — killed, down, paused or cut
off, permanent kills included — so no preference list (R distinct nodes) ever loses all its
members. A fault occupies its node from its start until `settle_s` after its end (time to restart
and rejoin). At most max(1, R−2) permanent kills when other kinds are chosen, so other faults still
fit. Faults start between `warmup_s` and the end of the load; the final phase ends whatever is
still active.
"""

import random

SETTLE_S = 3.0
KINDS = ("kill", "pause", "restart", "partition")


def make_plan(seed, nodes, duration_s, kinds, replicas, unsafe, interval_s, warmup_s=5.0):
    rng = random.Random(seed)
    budget = nodes - 1 if unsafe else replicas - 1
    permanent_max = nodes - 1 if unsafe else (budget if kinds == ["kill"] else max(1, replicas - 2))
    permanent = 0
    busy = []  # (start, end incl. settle, node index); end None = forever
    plan = []
    t = warmup_s + rng.uniform(0, interval_s / 2)
    while t < duration_s - 1.0:
        kind = rng.choice(kinds)
        free = [i for i in range(nodes) if not any(
            b[2] == i and b[0] <= t and (b[1] is None or t < b[1]) for b in busy)]
        faulty_now = nodes - len(free)
        room = budget - faulty_now
        # No two partitions at once: the cut side is one group.
        partitioned = any(p["kind"] == "partition" and p["start"] <= t < p["end"] for p in plan)
        if kind == "partition" and partitioned:
            room = 0
        if kind == "kill" and "restart" not in kinds and permanent >= permanent_max:
            room = 0
        if room <= 0 or not free:
            t += rng.uniform(0.5, 1.5)
            continue
        if kind == "partition":
            size = rng.randint(1, min(room, max(1, (nodes - 1) // 2)))
        else:
            size = 1
        targets = sorted(rng.sample(free, size))
        lengths = {"kill": (3.0, 10.0), "pause": (2.0, 8.0), "restart": (1.0, 1.0),
                   "partition": (3.0, 10.0)}[kind]
        length = rng.uniform(*lengths)
        permanent_kill = kind == "kill" and "restart" not in kinds
        end = None if permanent_kill else t + length
        permanent += permanent_kill
        plan.append({"kind": kind, "nodes": targets, "start": round(t, 3),
                     "end": None if end is None else round(min(end, duration_s), 3),
                     "permanent": permanent_kill})
        for i in targets:
            busy.append((t, None if end is None else min(end, duration_s) + SETTLE_S, i))
        t += rng.expovariate(1.0 / interval_s)
    return plan
