"""GET /metrics (docs/operations.md, "Metrics"): the Prometheus text exposition of a live node.

- One node runs jobs (single, batch, a duplicate, refusals); Debian's `promtool check metrics`
  accepts its exposition, and the counters moved by exactly what the test did.
- A real Prometheus (Debian's `prometheus`, its own config and data dir in the test's temp dir, on
  a free loopback port) scrapes a 3-node mesh every second; its query API must report
  meshwork_members{state="alive"} == 3 for each of the three nodes. Prometheus is stopped (and
  waited for) in a cleanup, even when the test fails.

Timeouts are generous upper bounds (scaled()); nothing asserts on timing.
"""

import json
import os
import re
import shutil
import subprocess
import time
import unittest
import urllib.parse
import urllib.request

from harness import Key, NodeTestCase, _die_with_parent, free_port, scaled
from test_membership import MeshNode

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse_exposition(text):
    """{(name, frozenset(labels.items())): float} and {family: type} from the text format."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


class Metrics(NodeTestCase):

    def scrape(self, client):
        r = client.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("Content-Type"), CONTENT_TYPE)
        return r.body.decode()

    def promtool_check(self, text):
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=scaled(30))
        self.assertEqual(r.returncode, 0, "promtool: %s%s" % (r.stdout, r.stderr))

    def assertHistogramsConsistent(self, samples, types):
        """Every histogram's buckets are cumulative and its +Inf bucket equals its _count."""
        for family, kind in types.items():
            if kind != "histogram":
                continue
            series = {}
            for (name, labels), v in samples.items():
                if name == family + "_bucket":
                    rest = frozenset(l for l in labels if l[0] != "le")
                    le = dict(labels)["le"]
                    series.setdefault(rest, []).append((float(le), v))
            for rest, buckets in series.items():
                buckets.sort()
                counts = [v for _, v in buckets]
                self.assertEqual(counts, sorted(counts), (family, rest))
                self.assertEqual(buckets[-1][0], float("inf"))
                self.assertEqual(counts[-1], samples[(family + "_count", rest)], (family, rest))

    def test_promtool_accepts_a_live_node_and_the_counters_match_what_ran(self):
        node = self.start_node("m1", ["--workers", 2])
        c = node.client()
        before, _ = parse_exposition(self.scrape(c))
        self.assertEqual(value(before, "meshwork_submissions_accepted_total"), 0)
        self.assertEqual(value(before, "meshwork_members", state="alive"), 1)

        ids = [self.submit(c, {"type": "echo", "payload": {"i": i}})["id"] for i in range(5)]
        batch = c.post("/v1/jobs/batch", {"jobs": [{"type": "echo", "payload": {"b": i}}
                                                   for i in range(3)] + [{"type": "nope"}]})
        self.assertEqual(batch.status, 200, batch)
        ids += [item["id"] for item in batch.json()["results"] if item["status"] == 202]
        self.assertEqual(len(ids), 8)
        envelope = Key.generate().envelope(json.dumps(
            {"type": "echo", "payload": {"signed": True}, "created_at": int(time.time() * 1000),
             "nonce": os.urandom(16).hex()}, separators=(",", ":"), sort_keys=True))
        ids.append(self.submit(c, envelope)["id"])
        self.submit(c, envelope, expect=200)                                  # duplicate
        self.assertProblem(c.post("/v1/jobs", {"type": "nope"}), 422)           # 4xx
        self.assertProblem(c.post("/v1/jobs", "{not json"), 400)                # 4xx
        self.assertProblem(c.post("/v1/jobs/batch", {"jobs": "no"}), 400)      # 4xx, whole batch
        self.assertProblem(c.get("/no/such/path/" + "x" * 50), 404)
        for job_id in ids:
            self.wait_job(c, job_id, "succeeded")

        text = self.scrape(c)
        self.promtool_check(text)
        samples, types = parse_exposition(text)
        self.assertHistogramsConsistent(samples, types)
        for family, kind in types.items():
            self.assertTrue(family.startswith("meshwork_"), family)
            self.assertEqual(family.endswith("_total"), kind == "counter", family)
        self.assertEqual(value(samples, "meshwork_submissions_accepted_total"), 9)
        self.assertEqual(value(samples, "meshwork_submissions_duplicate_total"), 1)
        self.assertEqual(value(samples, "meshwork_submissions_refused_total", reason="4xx"), 4)
        self.assertEqual(value(samples, "meshwork_submissions_refused_total", reason="429"), 0)
        self.assertEqual(value(samples, "meshwork_submissions_refused_total", reason="503"), 0)
        self.assertEqual(value(samples, "meshwork_jobs", state="succeeded"), 9)
        self.assertEqual(value(samples, "meshwork_jobs", state="queued"), 0)
        self.assertEqual(value(samples, "meshwork_attempts_total"), 9)
        self.assertEqual(value(samples, "meshwork_takeovers_total"), 0)
        self.assertEqual(value(samples, "meshwork_retries_requested_total"), 0)
        self.assertEqual(value(samples, "meshwork_retries_refused_total"), 0)
        self.assertEqual(value(samples, "meshwork_cancels_refused_total"), 0)
        self.assertEqual(value(samples, "meshwork_members", state="alive"), 1)
        self.assertEqual(value(samples, "meshwork_members", state="dead"), 0)
        # Every job was written (and fsync'd) at least once; groups may hold several.
        self.assertGreater(value(samples, "meshwork_store_fsync_seconds_count"), 0)
        duration = "meshwork_http_request_duration_seconds_count"
        self.assertEqual(value(samples, duration, method="POST", route="/v1/jobs", code="202"), 6)
        self.assertEqual(value(samples, duration, method="POST", route="/v1/jobs", code="200"), 1)
        self.assertEqual(value(samples, duration, method="POST", route="/v1/jobs/batch",
                               code="200"), 1)
        self.assertEqual(value(samples, duration, method="GET", route="other", code="404"), 1)
        self.assertEqual(value(samples, duration, method="GET", route="/metrics", code="200"), 1)
        self.assertGreaterEqual(value(samples, duration, method="GET", route="/v1/jobs/{id}",
                                      code="200"), 9)
        self.assertNotIn("x" * 50, text)  # raw paths never become labels

    # ---- a real Prometheus scraping a 3-node mesh ----

    def start_prometheus(self, targets):
        port = free_port()
        data = os.path.join(self.tmp, "prometheus")
        config = os.path.join(self.tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: meshwork\n    static_configs:\n"
                    "      - targets: [%s]\n" % ", ".join("'%s'" % t for t in targets))
        log = open(os.path.join(self.tmp, "prometheus.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + config, "--storage.tsdb.path=" + data,
             "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        self.addCleanup(self.stop_prometheus, proc)
        return proc, port

    def stop_prometheus(self, proc):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=scaled(30))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.assertIsNotNone(proc.returncode)  # exited and reaped: nothing left behind

    def prometheus_log(self):
        with open(os.path.join(self.tmp, "prometheus.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def query(self, port, expr):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=scaled(10)) as r:
            body = json.load(r)
        self.assertEqual(body["status"], "success", body)
        return {s["metric"].get("instance"): float(s["value"][1]) for s in body["data"]["result"]}

    def test_prometheus_scrapes_three_nodes_and_each_sees_three_alive(self):
        nodes, first = [], None
        for i in range(1, 4):
            node = MeshNode(self.tmp, "n%d" % i, ["--workers", 1, "--profile", "local"],
                            join=[first.gossip] if first else [])
            self.addCleanup(node.stop)
            node.start()
            nodes.append(node)
            first = first or node
        targets = ["127.0.0.1:%d" % n.port for n in nodes]
        proc, port = self.start_prometheus(targets)

        want = {t: 3.0 for t in targets}
        seen, deadline = None, time.monotonic() + scaled(45)
        while time.monotonic() < deadline:
            self.assertIsNone(proc.poll(), "prometheus exited\n" + self.prometheus_log())
            try:
                seen = self.query(port, 'meshwork_members{state="alive"}')
            except OSError:
                seen = None  # not listening yet
            if seen == want:
                break
            time.sleep(0.25)
        self.assertEqual(seen, want, self.prometheus_log())
        # Prometheus parsed the whole exposition, histograms included, from every node.
        self.assertEqual(self.query(port, 'up{job="meshwork"}'), {t: 1.0 for t in targets})
        fsyncs = self.query(port, 'meshwork_store_fsync_seconds_bucket{le="+Inf"}')
        self.assertEqual(set(fsyncs), set(targets))
        self.stop_prometheus(proc)


if __name__ == "__main__":
    unittest.main()
