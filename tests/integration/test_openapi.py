"""The API document (api/openapi.json): served by the node, structurally OpenAPI 3.1, complete
against the routes in api/server.cpp, and actually used: the harness checks every answer a Client
gets against it, and this file shows that the check runs and can fail."""

import copy
import json
import os
import re
import unittest

from harness import OPENAPI, OPENAPI_PATH, NodeTestCase, OpenApiMismatch

SERVER_CPP = os.path.join(os.path.dirname(OPENAPI_PATH), "server.cpp")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# What the document must describe beyond api/server.cpp's own routes (the issue's contract).
CONTRACT = {("get", "/metrics"), ("get", "/"), ("get", "/v1/openapi.json"), ("get", "/v1/events"),
            ("get", "/v1/jobs/{id}")}

# A minimal meta-check of the document's shape (the full OpenAPI schema is not packaged in
# Debian): the fields every OpenAPI 3.1 document and each of its operations must have.
RESPONSE = {"type": "object", "oneOf": [{"required": ["$ref"]}, {"required": ["description"]}]}
PARAMETER = {"type": "object", "required": ["name", "in"],
             "properties": {"in": {"enum": ["query", "header", "path", "cookie"]}}}
OPERATION = {"type": "object", "required": ["responses"], "properties": {
    "responses": {"type": "object", "minProperties": 1,
                  "propertyNames": {"pattern": "^([1-5][0-9X]{2}|default)$"},
                  "additionalProperties": RESPONSE},
    "parameters": {"type": "array", "items": PARAMETER}}}
PATH_ITEM = {"type": "object", "minProperties": 1,
             "propertyNames": {"enum": list(METHODS) + ["parameters", "summary", "description"]},
             "properties": {m: OPERATION for m in METHODS}}
META = {"type": "object", "required": ["openapi", "info", "paths"], "properties": {
    "openapi": {"type": "string", "pattern": r"^3\.1\.[0-9]+$"},
    "info": {"type": "object", "required": ["title", "version"]},
    "paths": {"type": "object", "minProperties": 1, "propertyNames": {"pattern": "^/"},
              "additionalProperties": PATH_ITEM},
    "components": {"type": "object", "properties": {
        "schemas": {"type": "object"},
        "responses": {"type": "object", "additionalProperties": RESPONSE}}}}}
ROUTE = re.compile(r'server_\.(Get|Post|Put|Delete|Patch)\(\s*(?:R"\((.*?)\)"|"(.*?)")')


def refs(node):
    """Every $ref value in a JSON value."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def server_routes():
    """(method, path template) of each route api/server.cpp registers; regex groups become {}."""
    with open(SERVER_CPP, encoding="utf-8") as f:
        text = f.read()
    out = set()
    for method, raw, plain in ROUTE.findall(text):
        path = re.sub(r"\([^()]*\)", "{}", raw or plain)
        out.add((method.lower(), path))
    return out


def shape(template):
    return re.sub(r"\{[^/]*\}", "{}", template)


class OpenApiDocument(NodeTestCase):
    def setUp(self):
        super().setUp()
        self.assertIsNotNone(OPENAPI, "python3-jsonschema is not importable: the harness cannot "
                                      "check answers against api/openapi.json (apt-get install "
                                      "python3-jsonschema)")
        self.doc = OPENAPI.doc

    def test_structure_is_openapi_3_1_and_every_ref_resolves(self):
        import jsonschema
        jsonschema.Draft202012Validator(META).validate(self.doc)
        for ref in set(refs(self.doc)):
            with self.subTest(ref=ref):
                self.assertIsNotNone(OPENAPI.pointer(ref))  # KeyError when it does not resolve
        for name, schema in self.doc["components"]["schemas"].items():
            with self.subTest(schema=name):
                jsonschema.Draft202012Validator.check_schema(schema)
        ids = [op["operationId"] for item in self.doc["paths"].values()
               for m, op in item.items() if m in METHODS]
        self.assertEqual(len(ids), len(set(ids)), "operationIds are unique")
        for template, item in self.doc["paths"].items():
            declared = {p["name"] for m in METHODS if m in item
                        for p in item[m].get("parameters", []) if p["in"] == "path"}
            self.assertEqual(declared, set(re.findall(r"\{([^}]+)\}", template)), template)

    def test_every_public_route_is_documented(self):
        documented = {(m, shape(t)) for t, item in self.doc["paths"].items() for m in item
                      if m in METHODS}
        routes = server_routes()
        self.assertIn(("post", "/v1/jobs"), routes, "the route parser found the routes")
        public = {(m, p) for m, p in routes if not p.startswith("/internal/")}
        self.assertEqual(public - documented, set(),
                         "routes in api/server.cpp missing from the document")
        self.assertEqual({(m, shape(t)) for m, t in CONTRACT} - documented, set())
        self.assertFalse([t for t in self.doc["paths"] if t.startswith("/internal")],
                         "peer-only endpoints are not public API")

    def test_the_node_serves_the_document_it_was_built_from(self):
        node = self.start_node("oa1")
        r = node.client().get("/v1/openapi.json")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.content_type, "application/json")
        with open(OPENAPI_PATH, encoding="utf-8") as f:
            self.assertEqual(r.json(), json.load(f),
                             "the binary embeds a stale api/openapi.json: rebuild")

    def test_answers_are_validated_and_a_wrong_one_is_rejected(self):
        node = self.start_node("oa2")
        c = node.client()
        before = OPENAPI.validated
        job = self.run_job(c, {"type": "echo", "payload": {"x": [1, "two"]}})
        self.assertEqual(c.get("/v1/jobs?limit=5").status, 200)
        self.assertEqual(c.get("/v1/node").status, 200)
        self.assertProblem(c.get("/v1/jobs?limit=0"), 422)
        self.assertProblem(c.get("/v1/no-such-endpoint"), 404)
        self.assertGreaterEqual(OPENAPI.validated - before, 6, "the harness validated the answers")

        # The same checks reject answers that break the document: a wrong value, an extra field,
        # a missing field, a status or a content type it does not list, a route it does not have.
        path = "/v1/jobs/" + job["id"]
        ok = json.dumps(job).encode()
        OPENAPI.check("GET", path, 200, "application/json", ok)
        bad = []
        for mutate in (lambda j: j.update(state="done"),
                       lambda j: j.update(surprise=1),
                       lambda j: j.pop("replicas"),
                       lambda j: j["receipt"].update(attempt="1"),
                       lambda j: j["history"][0].update(state="retry_wait")):
            wrong = copy.deepcopy(job)
            mutate(wrong)
            bad.append((200, "application/json", json.dumps(wrong).encode()))
        bad += [(418, "application/json", ok),
                (200, "text/html", ok),
                (404, "application/problem+json", b'{"type":"about:blank","title":"Not found",'
                                                  b'"status":400,"detail":"x"}'),
                (404, "application/problem+json", b'{"title":"Not found","status":404}')]
        for status, ctype, body in bad:
            with self.subTest(status=status, body=body[:80]):
                with self.assertRaises(OpenApiMismatch):
                    OPENAPI.check("GET", path, status, ctype, body)
        with self.assertRaises(OpenApiMismatch):
            OPENAPI.check("GET", "/v1/undocumented", 200, "application/json", b"{}")

    def test_event_data_schemas(self):
        OPENAPI.check_event("job", {"id": "a" * 64, "state": "running", "type": "echo",
                                    "node": "n1", "attempt": 1, "at_ms": 1700000000000})
        OPENAPI.check_event("member", {"name": "n2", "state": "suspect", "incarnation": 3,
                                       "address": "127.0.0.1:7001"})
        with self.assertRaises(OpenApiMismatch):
            OPENAPI.check_event("job", {"id": "a" * 64, "state": "retry_wait", "type": "echo",
                                        "node": "n1", "attempt": 1, "at_ms": 1})
        with self.assertRaises(OpenApiMismatch):
            OPENAPI.check_event("member", {"name": "n2", "state": "alive"})
        with self.assertRaises(OpenApiMismatch):
            OPENAPI.check_event("ring", {})


if __name__ == "__main__":
    unittest.main()
