"""simulations/chaos.sh end to end: a short chaos run over real nodes loses nothing, and the
verifier catches a deliberately broken build that does.

1. kill, pause, restart (and partitions, where network namespaces are allowed) on 5 nodes under a
   steady mixed load: the report has every field, they add up, and lost = 0.
2. The same tool against nodes started with the hidden `--test-break skip-takeover` (a replica never
   takes over a dead owner's running job) and permanent kills: jobs that were running on a killed
   node never finish, and the run reports them lost and exits non-zero.
3. A liar (`--faults ...,lie`: one node with `--test-break lie`) among kills, restarts and
   partitions, half the jobs at redundancy 3: no job with redundancy 3 succeeds with a wrong
   result, and nothing is lost.
Runs take about a minute each on the release build; the load lasts the same wall time under ASan,
only the waits are scaled.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import xml.dom.minidom

from harness import BIN, scaled

HERE = os.path.dirname(os.path.abspath(__file__))
CHAOS = os.path.normpath(os.path.join(HERE, "..", "..", "simulations", "chaos.sh"))
sys.path.insert(0, os.path.join(os.path.dirname(CHAOS), "chaos"))
import honesty  # noqa: E402  (simulations/chaos/honesty.py)
import verify  # noqa: E402  (simulations/chaos/verify.py)
FIELDS = ("acknowledged", "succeeded", "failed", "cancelled", "lost", "duplicate_executions",
          "duplicate_completions",
          "false_deaths", "failover_ms", "faults", "seed")


class FailoverRule(unittest.TestCase):
    """verify.failovers on hand-made histories (seed 2 of `make chaos`, 2026-11-29)."""

    @staticmethod
    def entry(at_s, attempt, node, state, reason):
        return {"at": int(at_s * 1000), "attempt": attempt, "node": node, "state": state,
                "reason": reason}

    def test_a_job_running_on_the_faulted_node_fails_over(self):
        e = self.entry
        rec = {"state": "succeeded", "history": [
            e(100, 0, "n7", "queued", "submitted"), e(100, 1, "n6", "running", "attempt 1"),
            e(111, 1, "n5", "queued", "owner n6 dead; n5 takes over"),
            e(111, 2, "n5", "running", "attempt 2"), e(113, 2, "n5", "succeeded", "succeeded")]}
        windows = [{"kind": "kill", "node": "n6", "start": 110.0, "end": None}]
        acks = [{"id": "j", "type": "sleep", "payload": {"ms": 1500}}]
        got = verify.failovers(windows, {"j": rec}, acks)
        self.assertEqual([(f["node"], f["ms"], f["beyond_run_ms"]) for f in got],
                         [("n6", 3000, 1500)])

    def test_a_job_that_had_already_succeeded_has_no_failover(self):
        # n6 took the job over, learned at once that n7 had finished it and stopped its handler
        # (no end of attempt 2 in the history); a stale replica ran it again after n6's pause.
        e = self.entry
        rec = {"state": "succeeded", "history": [
            e(100, 0, "n7", "queued", "submitted"), e(100, 1, "n7", "running", "attempt 1"),
            e(104, 1, "n7", "succeeded", "succeeded"),
            e(110, 1, "n6", "queued", "owner n7 dead; n6 takes over"),
            e(110, 2, "n6", "running", "attempt 2"),
            e(170, 1, "n5", "queued", "owner n7 dead; n5 takes over"),
            e(170, 2, "n5", "running", "attempt 2"), e(174, 2, "n5", "succeeded", "succeeded")]}
        windows = [{"kind": "pause", "node": "n6", "start": 153.0, "end": 158.0}]
        self.assertEqual(verify.failovers(windows, {"j": rec}, []), [])


class HonestyRule(unittest.TestCase):
    """honesty.py on hand-made records: the honest result recomputed or, where it cannot be, the
    one most honest nodes gave; wrong results split by redundancy."""

    def test_pow_is_recomputed_as_the_node_computes_it(self):
        # A node's answer for {"data": "x1", "difficulty_bits": 12} (node/handler_pow.cpp).
        self.assertEqual(honesty.recomputed("pow", {"data": "x1", "difficulty_bits": 12}, 1), {
            "nonce": 3832, "hashes": 3833, "difficulty_bits": 12,
            "hash": "0008b1932c2c51426e5559b19aa7e1932349b1d50dd0278d866cc05ce826889e"})
        self.assertEqual(honesty.recomputed("flaky", {"fail_times": 1, "ms": 5}, 2),
                         {"succeeded_on_attempt": 2, "fail_times": 1})
        self.assertIsNone(honesty.recomputed("enrich", {}, 1))

    def test_other_types_go_by_the_honest_nodes_of_the_final_attempt(self):
        rec = {"attempts": 2, "results": {
            "n1": {"attempt": 2, "outcome": "succeeded", "result": {"v": 1}},
            "n2": {"attempt": 2, "outcome": "succeeded", "result": {"v": 1}},
            "n3": {"attempt": 1, "outcome": "succeeded", "result": {"v": 9}},
            "n5": {"attempt": 2, "outcome": "succeeded", "result": {"v": 2}}}}
        self.assertEqual(honesty.by_honest_nodes(rec, {"n5"}), {"v": 1})
        self.assertIsNone(honesty.by_honest_nodes(rec, {"n1", "n2", "n5"}))

    def test_wrong_results_are_split_by_redundancy(self):
        acks = [{"id": i, "type": "echo", "payload": {"n": i}, "redundancy": k}
                for i, k in (("a", 3), ("b", 1), ("c", 3), ("d", 1))]
        lie = {"echo": {"lie": 1}}
        records = {
            "a": {"state": "succeeded", "attempts": 1, "result": lie, "receipt": {"node": "n5"}},
            "b": {"state": "succeeded", "attempts": 1, "result": lie, "receipt": {"node": "n5"}},
            "c": {"state": "succeeded", "attempts": 1, "result": {"echo": {"n": "c"}}},
            "d": {"state": "failed", "attempts": 3, "result": None}}
        strong, weak = honesty.wrong_results(acks, records, {"n5"})
        self.assertEqual([(j["id"], j["producer"]) for j in strong], [("a", "n5")])
        self.assertEqual([j["id"] for j in weak], ["b"])


class Chaos(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="meshwork-chaos-")
        if not os.environ.get("MESHWORK_KEEP_TMP"):
            self.addCleanup(shutil.rmtree, self.tmp, True)

    def chaos(self, *args):
        report = os.path.join(self.tmp, "report.json")
        cmd = [CHAOS, "--bin", BIN, "--run-dir", os.path.join(self.tmp, "run"),
               "--report", report] + [str(a) for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=scaled(120) + 240)
        out = r.stdout + r.stderr
        self.assertTrue(os.path.exists(report), "no report; output:\n" + out[-4000:])
        with open(report) as f:
            return r.returncode, json.load(f), out

    def test_short_run_loses_nothing(self):
        code, rep, out = self.chaos("--nodes", 5, "--duration", 30, "--seed", 16, "--rate", 8,
                                    "--faults", "kill,pause,restart,partition",
                                    "--fault-interval", 4, "--settle", scaled(60))
        for field in FIELDS:
            self.assertIn(field, rep, out)
        self.assertEqual(rep["lost"], 0, out)
        self.assertEqual(rep["crashes"], [], out)
        self.assertEqual(code, 0, out)
        self.assertEqual(rep["seed"], 16)
        self.assertGreater(rep["acknowledged"], 100, out)
        self.assertEqual(rep["succeeded"] + rep["failed"] + rep["cancelled"], rep["acknowledged"])
        self.assertGreaterEqual(rep["duplicate_executions"], 0)
        self.assertGreaterEqual(rep["false_deaths"], 0)
        self.assertEqual(set(rep["failover_ms"]) >= {"p50", "p99", "max"}, True)
        kinds = {f["kind"] for f in rep["faults"]}
        if rep["partitions"] == "network namespaces":  # seed 16 plans every kind at 5 nodes
            self.assertEqual(kinds, {"kill", "pause", "restart", "partition"}, rep["faults"])
        else:  # without partitions the seed draws another plan
            self.assertTrue(kinds, rep["faults"])
        for f in rep["faults"]:
            self.assertLessEqual(len(f["nodes"]), 2, "at most R-1 faulty nodes by default")
        if rep["failover_ms"]["count"]:
            fo = rep["failover_ms"]
            self.assertLessEqual(0, fo["p50"])
            self.assertLessEqual(fo["p50"], fo["p99"])
            self.assertLessEqual(fo["p99"], fo["max"])
        xml.dom.minidom.parse(os.path.join(self.tmp, "report.svg"))
        self.assertIn("PASS: lost=0", out)

    def test_broken_build_is_caught(self):
        code, rep, out = self.chaos("--nodes", 4, "--duration", 15, "--seed", 2, "--rate", 8,
                                    "--faults", "kill", "--mix", "sleep", "--settle", 20,
                                    "--test-break", "skip-takeover")
        self.assertNotEqual(code, 0, out)
        self.assertGreater(rep["lost"], 0, out)
        self.assertIn("FAIL", out)
        killed = {n for f in rep["faults"] if f["kind"] == "kill" for n in f["nodes"]}
        stuck = [j for j in rep["lost_jobs"] if
                 any("still running" in j["why"] and "claimed by %s)" % n in j["why"]
                     for n in killed)]
        self.assertTrue(stuck, "lost jobs should be stuck on a killed owner: %s" % rep["lost_jobs"])

    def test_a_liar_among_faults_is_outvoted(self):
        code, rep, out = self.chaos("--nodes", 5, "--duration", 20, "--seed", 5, "--rate", 8,
                                    "--faults", "kill,restart,partition,lie",
                                    "--fault-interval", 5, "--settle", scaled(60))
        for field in ("broken_nodes", "redundant_jobs", "wrong_results_accepted",
                      "wrong_results_k1", "liars_detected", "liars"):
            self.assertIn(field, rep, out)
        self.assertEqual(list(rep["broken_nodes"].values()), ["lie"], out)
        self.assertGreater(rep["redundant_jobs"], 20, out)
        self.assertEqual(rep["wrong_results_accepted"], 0, out)
        self.assertEqual(rep["lost"], 0, out)
        self.assertEqual(code, 0, out)


if __name__ == "__main__":
    unittest.main()
