"""Membership hygiene with real node processes: a member dead for --reap-after-s gives up its ring
tokens, every job is again on R live replicas that hold it, and the ring view no longer gives the
dead member a share; when it comes back it gets its tokens and its ranges again
(docs/guarantees.md, placement; docs/ring.md). Timeouts are generous upper bounds; no test asserts
on timing.
"""

import json
import unittest

from test_mesh import Mesh

REAP_AFTER_S = 3


class Reap(Mesh):

    def ring(self, node):
        r = self.client(node).get("/v1/cluster/ring")
        self.assertEqual(r.status, 200, r)
        return r.json()

    def ring_member(self, node, name):
        return next((m for m in self.ring(node)["members"] if m["name"] == name), None)

    def held_by_replicas(self, nodes, ids, count):
        """Every job's replicas (as nodes[0] places it) are `count` of `nodes`, and each holds a
        copy that agrees with the merged view."""
        names = {n.name: n for n in nodes}
        for job_id in ids:
            view = self.job(nodes[0], job_id)
            if view is None or len(view["replicas"]) != count:
                return False
            for name in view["replicas"]:
                if name not in names:
                    return False
                local = self.job(names[name], job_id, local=True)
                if local is None or self.fingerprint(local) != self.fingerprint(view):
                    return False
        return True

    def test_a_member_dead_past_reap_after_gives_up_its_tokens_and_comes_back_with_them(self):
        nodes = self.start_mesh(4, ["--profile", "local", "--reap-after-s", REAP_AFTER_S])
        info = self.client(nodes[0]).get("/v1/node").json()
        self.assertEqual(info["limits"]["reap_after_s"], REAP_AFTER_S)
        r = self.client(nodes[0]).post("/v1/jobs/batch", json.dumps(
            {"jobs": [{"type": "echo", "payload": {"i": i}} for i in range(30)]}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["accepted"], 30)
        ids = [item["id"] for item in r.json()["results"]]
        for job_id in ids:
            self.wait_job(self.client(nodes[0]), job_id, "succeeded")
        victim, survivors = nodes[3], nodes[:3]
        self.assertEqual(self.ring_member(survivors[0], victim.name)["tokens"], 512)

        victim.kill9()
        self.wait_until("every survivor to reap %s" % victim.name, lambda: all(
            (self.ring_member(s, victim.name) or {}).get("state") == "reaped" for s in survivors),
            60, survivors)
        for s in survivors:
            ring = self.ring(s)
            self.assertEqual(ring["write_quorum"], 2)
            reaped = self.ring_member(s, victim.name)
            self.assertEqual((reaped["tokens"], reaped["primary_fraction"],
                              reaped["replica_fraction"], reaped["primary_ranges"]),
                             (0, 0, 0, []), reaped)
            live = [m for m in ring["members"] if m["name"] != victim.name]
            self.assertEqual(sorted(m["name"] for m in live), [n.name for n in survivors])
            self.assertAlmostEqual(sum(m["primary_fraction"] for m in live), 1.0, places=6)
            for m in live:
                self.assertEqual(m["tokens"], ring["vnodes"], m)
        self.wait_until("every job to be held by its 3 live replicas",
                        lambda: self.held_by_replicas(survivors, ids, 3), 60, survivors)

        victim.restart()
        self.wait_until("every survivor to give %s its tokens back" % victim.name, lambda: all(
            (self.ring_member(s, victim.name) or {}).get("tokens") == 512 for s in survivors),
            60, nodes)
        self.wait_until("every job to be held by its replicas, %s among them" % victim.name,
                        lambda: self.held_by_replicas(nodes, ids, 3), 60, nodes)
        back = [i for i in ids if victim.name in self.job(nodes[0], i)["replicas"]]
        self.assertTrue(back, "%s is a replica of some jobs again" % victim.name)


if __name__ == "__main__":
    unittest.main()
