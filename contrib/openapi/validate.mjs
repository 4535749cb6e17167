#!/usr/bin/env node
// callgate's OpenAPI checker.
//
//   node validate.mjs doc
//       contrib/openapi.yaml is a valid OpenAPI 3.1 document (its meta-schema),
//       every $ref resolves, every schema compiles, every example fits its
//       schema, every route of src/front.c is documented and every documented
//       path is routed.
//   node validate.mjs live BASE_URL TENANT_KEY ADMIN_TOKEN
//       drives a running gateway through every kind of endpoint and checks
//       each answer against the document: the status is one the operation
//       documents (and the one the scenario expects), the Content-Type is a
//       documented media type, the body fits its schema, required headers are
//       there and fit theirs.
//       Optional environment: CALLGATE_OTHER_KEY (a second tenant's key:
//       cross-tenant 404), CALLGATE_TENANT (the first tenant's id, default
//       acme), CALLGATE_CD_WEBHOOK_TOKEN (the tenant's CloudDialer webhook
//       token: vendor webhook answers), CALLGATE_SINK_URL (where the tenant's
//       callback receiver lists what it got, as the vendor simulator's
//       /_sink/<name>: relayed events are checked against webhooks.callEvent),
//       CALLGATE_WEBHOOK_SECRET (the tenant's whsec_ secret: signatures are
//       verified too).
//
// One line per check, "ok <name>" or "FAIL <name>: why" ("skip <name>: why"
// for what this gateway does not serve), then "N passed, M failed". The exit
// status is 1 when anything failed. Nothing here reaches the network except
// BASE_URL and the sink.
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import YAML from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const docPath = process.env.CALLGATE_OPENAPI ?? join(here, "..", "openapi.yaml");
const frontPath = join(here, "..", "..", "src", "front.c");
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

// ---- reporting --------------------------------------------------------------

let passed = 0;
let failed = 0;
function ok(name) {
  passed++;
  console.log(`ok ${name}`);
}
function fail(name, why) {
  failed++;
  console.log(`FAIL ${name}: ${String(why).replace(/\s+/g, " ").slice(0, 600)}`);
}
function skip(name, why) {
  console.log(`skip ${name}: ${why}`);
}
function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

// ---- the document -----------------------------------------------------------

function loadDoc() {
  const text = readFileSync(docPath, "utf8");
  const parsed = YAML.parseDocument(text, { uniqueKeys: true });
  if (parsed.errors.length > 0) {
    throw new Error(parsed.errors.map((e) => e.message).join("; "));
  }
  return parsed.toJS({ maxAliasCount: -1 });
}

function unescapePointer(s) {
  return s.replace(/~1/g, "/").replace(/~0/g, "~");
}

function escapePointer(s) {
  return s.replace(/~/g, "~0").replace(/\//g, "~1");
}

// The value at a local JSON pointer ("#/components/..."), or undefined.
function pointer(doc, ref) {
  if (!ref.startsWith("#")) return undefined;
  let v = doc;
  for (const part of ref.slice(1).split("/").slice(1)) {
    if (v === null || typeof v !== "object") return undefined;
    v = v[unescapePointer(decodeURIComponent(part))];
  }
  return v;
}

// Follow $ref chains of non-schema objects (responses, parameters, headers, examples).
function deref(doc, obj) {
  let seen = 0;
  while (obj && typeof obj === "object" && typeof obj.$ref === "string") {
    if (++seen > 20) throw new Error(`$ref loop at ${obj.$ref}`);
    const next = pointer(doc, obj.$ref);
    if (next === undefined) throw new Error(`unresolved $ref ${obj.$ref}`);
    obj = next;
  }
  return obj;
}

// Every {$ref} in the document, with where it is.
function* refs(node, at = "#") {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) yield* refs(node[i], `${at}/${i}`);
  } else if (node && typeof node === "object") {
    if (typeof node.$ref === "string") yield [at, node.$ref];
    for (const [k, v] of Object.entries(node)) yield* refs(v, `${at}/${escapePointer(k)}`);
  }
}

// Every operation: [pathTemplate, method, operation, label]; webhooks too.
function* operations(doc) {
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const m of METHODS) {
      if (item[m]) yield [path, m, item[m], `${m.toUpperCase()} ${path}`];
    }
  }
  for (const [name, item] of Object.entries(doc.webhooks ?? {})) {
    for (const m of METHODS) {
      if (item[m]) yield [null, m, item[m], `webhook ${name} ${m.toUpperCase()}`];
    }
  }
}

// ---- schemas through Ajv ----------------------------------------------------

const SCHEMAS_ID = "urn:callgate:openapi";

// A deep copy with "#/components/schemas/X" pointing into the registered schema set.
function rewriteRefs(node) {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node && typeof node === "object") {
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === "$ref" && typeof v === "string" && v.startsWith("#/components/schemas/")) {
        out[k] = `${SCHEMAS_ID}#/$defs/${v.slice("#/components/schemas/".length)}`;
      } else {
        out[k] = rewriteRefs(v);
      }
    }
    return out;
  }
  return node;
}

function makeAjv(doc) {
  const ajv = new Ajv2020({
    strict: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
    allErrors: true,
    allowUnionTypes: true,
  });
  addFormats(ajv);
  // OpenAPI's own schema keywords (annotations for validation purposes).
  for (const k of ["discriminator", "xml", "externalDocs", "example"]) ajv.addKeyword(k);
  ajv.addSchema({ $id: SCHEMAS_ID, $defs: rewriteRefs(doc.components?.schemas ?? {}) });
  const cache = new Map();
  return (schema, key) => {
    const k = key ?? JSON.stringify(schema);
    if (!cache.has(k)) cache.set(k, ajv.compile(rewriteRefs(schema)));
    return cache.get(k);
  };
}

function ajvErrors(validate) {
  return (validate.errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || "/"} ${e.message}${e.params ? " " + JSON.stringify(e.params) : ""}`)
    .join("; ");
}

// ---- doc mode ---------------------------------------------------------------

async function docMode() {
  let doc;
  try {
    doc = loadDoc();
    ok("document parses (YAML, no duplicate keys)");
  } catch (e) {
    fail("document parses (YAML, no duplicate keys)", e.message);
    finish();
  }

  const validator = new Validator();
  const res = await validator.validate(structuredClone(doc));
  if (res.valid && validator.version === "3.1") {
    ok("document is valid OpenAPI 3.1 (meta-schema)");
  } else if (res.valid) {
    fail("document is valid OpenAPI 3.1 (meta-schema)", `validated as OpenAPI ${validator.version}`);
  } else {
    fail("document is valid OpenAPI 3.1 (meta-schema)", JSON.stringify(res.errors).slice(0, 600));
  }
  if (doc.openapi === "3.1.0") ok("openapi: 3.1.0");
  else fail("openapi: 3.1.0", `openapi is ${doc.openapi}`);

  const bad = [...refs(doc)].filter(([, r]) => pointer(doc, r) === undefined);
  if (bad.length === 0) ok("every $ref resolves");
  else fail("every $ref resolves", bad.map(([at, r]) => `${at} -> ${r}`).join(", "));

  const ids = new Map();
  const dup = [];
  for (const [, , op, label] of operations(doc)) {
    if (!op.operationId) dup.push(`${label} has none`);
    else if (ids.has(op.operationId)) dup.push(`${op.operationId} twice`);
    else ids.set(op.operationId, label);
  }
  if (dup.length === 0) ok(`operationIds present and unique (${ids.size} operations)`);
  else fail("operationIds present and unique", dup.join(", "));

  let compile;
  try {
    compile = makeAjv(doc);
    const names = Object.keys(doc.components?.schemas ?? {});
    for (const n of names) compile({ $ref: `#/components/schemas/${n}` });
    ok(`every component schema compiles (${names.length}, JSON Schema 2020-12, strict)`);
  } catch (e) {
    fail("every component schema compiles", e.message);
    finish();
  }

  // Every response of the API carries X-Request-Id.
  const missing = [];
  for (const [path, , op, label] of operations(doc)) {
    if (path === null) continue;
    for (const [code, r] of Object.entries(op.responses ?? {})) {
      const resp = deref(doc, r);
      if (!resp.headers?.["X-Request-Id"]) missing.push(`${label} ${code}`);
    }
  }
  if (missing.length === 0) ok("every response documents X-Request-Id");
  else fail("every response documents X-Request-Id", missing.join(", "));

  // Every error answer is a problem document.
  const notProblem = [];
  for (const [path, , op, label] of operations(doc)) {
    if (path === null) continue;
    for (const [code, r] of Object.entries(op.responses ?? {})) {
      const resp = deref(doc, r);
      if (Number(code) >= 400 && !resp.content?.["application/problem+json"] &&
          !(label === "POST /admin/routes/reload" && code === "422") &&
          !(path === "/readyz" && code === "503")) {
        notProblem.push(`${label} ${code}`);
      }
    }
  }
  if (notProblem.length === 0) ok("every error response is application/problem+json");
  else fail("every error response is application/problem+json", notProblem.join(", "));

  // Examples fit their schemas: media types of request bodies and responses,
  // one line per operation.
  for (const [, , op, label] of operations(doc)) {
    const errs = [];
    let n = 0;
    const media = [];
    if (op.requestBody) {
      for (const [type, m] of Object.entries(deref(doc, op.requestBody).content ?? {})) {
        media.push([`request ${type}`, m]);
      }
    }
    for (const [code, r] of Object.entries(op.responses ?? {})) {
      for (const [type, m] of Object.entries(deref(doc, r).content ?? {})) {
        media.push([`${code} ${type}`, m]);
      }
    }
    for (const [where, m] of media) {
      const examples = [];
      if (m.example !== undefined) examples.push(["example", m.example]);
      for (const [name, e] of Object.entries(m.examples ?? {})) {
        examples.push([name, deref(doc, e).value]);
      }
      for (const [name, value] of examples) {
        n++;
        if (!m.schema) continue;
        const v = compile(m.schema);
        if (!v(value)) errs.push(`${where} ${name}: ${ajvErrors(v)}`);
      }
    }
    if (n === 0) continue;
    if (errs.length === 0) ok(`examples fit their schemas: ${label} (${n})`);
    else fail(`examples fit their schemas: ${label}`, errs.join(" | "));
  }
  const unused = Object.keys(doc.components?.examples ?? {}).filter(
    (k) => ![...refs(doc)].some(([, r]) => r === `#/components/examples/${k}`),
  );
  if (unused.length === 0) ok("every component example is used");
  else fail("every component example is used", unused.join(", "));

  // The code's route table and the document name the same endpoints.
  if (!existsSync(frontPath)) {
    skip("src/front.c routes documented", `${frontPath} not found`);
  } else {
    const src = readFileSync(frontPath, "utf8");
    const table = src.slice(src.indexOf("front_routes[] = {"), src.indexOf("};", src.indexOf("front_routes[] = {")));
    const routes = [...table.matchAll(/\{HTTP1_([A-Z]+),\s*"([^"]+)"/g)].map(([, m, p]) => [m.toLowerCase(), p]);
    const documented = new Set();
    for (const [path, m] of operations(doc)) {
      if (path !== null) documented.add(`${m} ${path.replace(/\{[^}]+\}/g, "*")}`);
    }
    const undocumented = routes.filter(([m, p]) => !documented.has(`${m} ${p}`));
    if (routes.length === 0) fail("src/front.c routes documented", "no route table found in src/front.c");
    else if (undocumented.length === 0) ok(`every route of src/front.c is documented (${routes.length})`);
    else fail("every route of src/front.c is documented", undocumented.map(([m, p]) => `${m.toUpperCase()} ${p}`).join(", "));
    const served = new Set(routes.map(([m, p]) => `${m} ${p}`));
    const unserved = [...documented].filter((k) => !served.has(k));
    if (unserved.length === 0) ok("every documented operation is routed by src/front.c");
    else fail("every documented operation is routed by src/front.c", unserved.join(", "));
  }
  finish();
}

// ---- live mode --------------------------------------------------------------

function matchTemplate(template, path) {
  const re = new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\\?\{[^}]+\\?\}/g, "[^/]+")}$`);
  return re.test(path);
}

class Live {
  constructor(doc, base, key, admin) {
    this.doc = doc;
    this.compile = makeAjv(doc);
    this.base = base.replace(/\/+$/, "");
    this.key = key;
    this.admin = admin;
    this.seq = 0;
  }

  async request(method, path, { auth = "tenant", headers = {}, body, raw } = {}) {
    const h = { ...headers };
    if (auth === "tenant") h.Authorization = `Bearer ${this.key}`;
    else if (auth === "admin") h.Authorization = `Bearer ${this.admin}`;
    else if (auth) h.Authorization = auth;
    let payload;
    if (raw !== undefined) payload = raw;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      h["Content-Type"] ??= "application/json";
    }
    const res = await fetch(this.base + path, {
      method,
      headers: h,
      body: payload,
      redirect: "manual",
      signal: AbortSignal.timeout(20000),
    });
    const buf = Buffer.from(await res.arrayBuffer());
    return { method, path, status: res.status, headers: res.headers, buf, text: buf.toString("utf8") };
  }

  // The operation for method + concrete path, or null.
  operation(method, path) {
    const bare = path.split("?")[0];
    const m = method.toLowerCase();
    // Literal paths win over templated ones (as the gateway's own routing does).
    const paths = Object.keys(this.doc.paths).sort((a, b) => a.includes("{") - b.includes("{"));
    for (const t of paths) {
      if (matchTemplate(t, bare) && this.doc.paths[t][m]) return [t, this.doc.paths[t][m]];
    }
    return null;
  }

  // Check one answer against a documented response object; returns problems.
  conform(resp, response, { headOnly = false } = {}) {
    const errs = [];
    const r = deref(this.doc, response);
    for (const [name, hdef] of Object.entries(r.headers ?? {})) {
      const h = deref(this.doc, hdef);
      const value = resp.headers.get(name);
      if (value === null) {
        if (h.required) errs.push(`header ${name} missing`);
        continue;
      }
      if (h.schema) {
        const v = this.compile(h.schema);
        if (!v(value)) errs.push(`header ${name}: "${value}" ${ajvErrors(v)}`);
      }
    }
    const ctype = (resp.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
    const content = r.content ?? {};
    if (Object.keys(content).length === 0) {
      if (resp.buf.length > 0 && !headOnly) errs.push(`undocumented body (${ctype || "no content type"})`);
      return errs;
    }
    if (headOnly) return errs;
    const key = Object.keys(content).find((k) => {
      const kk = k.toLowerCase();
      return kk === ctype || (kk.endsWith("/*") && ctype.startsWith(kk.slice(0, -1)));
    });
    if (!key) {
      errs.push(`Content-Type "${ctype}" is not one of ${Object.keys(content).join(", ")}`);
      return errs;
    }
    if (/^application\/(.+\+)?json$/.test(key)) {
      let body;
      try {
        body = JSON.parse(resp.text);
      } catch (e) {
        errs.push(`body is not JSON: ${e.message}`);
        return errs;
      }
      resp.json = body;
      if (content[key].schema) {
        const v = this.compile(content[key].schema);
        if (!v(body)) errs.push(`body does not fit the schema: ${ajvErrors(v)}`);
      }
    } else if (key.startsWith("audio/") && resp.buf.length === 0) {
      errs.push("empty audio body");
    }
    return errs;
  }

  // Send one request, check the answer; returns the response (json parsed when JSON).
  async check(name, method, path, opts = {}) {
    const { expect, response, assert, ...req } = opts;
    let resp;
    try {
      resp = await this.request(method, path, req);
    } catch (e) {
      fail(name, `${method} ${path}: ${e.message}`);
      return null;
    }
    const errs = [];
    let docResponse = response ? pointer(this.doc, response) : null;
    if (!docResponse) {
      const found = this.operation(method, path);
      if (!found) {
        fail(name, `${method} ${path.split("?")[0]} is not a documented operation`);
        return resp;
      }
      const responses = found[1].responses ?? {};
      docResponse = responses[String(resp.status)] ?? responses[`${String(resp.status)[0]}XX`] ?? responses.default;
      if (!docResponse) {
        fail(name, `status ${resp.status} is not documented for ${method} ${found[0]} (${Object.keys(responses).join(", ")}): ${resp.text.slice(0, 200)}`);
        return resp;
      }
    }
    if (expect && !expect.includes(resp.status)) {
      errs.push(`expected ${expect.join(" or ")}, got ${resp.status}: ${resp.text.slice(0, 300)}`);
    }
    errs.push(...this.conform(resp, docResponse, { headOnly: method === "HEAD" }));
    if (errs.length === 0 && assert) {
      try {
        const why = assert(resp);
        if (why) errs.push(why);
      } catch (e) {
        errs.push(`assertion failed: ${e.message}`);
      }
    }
    if (errs.length === 0) ok(`${name} (${method} ${path.split("?")[0]} ${resp.status})`);
    else fail(`${name} (${method} ${path.split("?")[0]})`, errs.join("; "));
    return resp;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TERMINAL = new Set(["completed", "no_answer", "busy", "failed", "canceled"]);

async function liveMode(base, key, admin) {
  let doc;
  try {
    doc = loadDoc();
  } catch (e) {
    fail("document parses", e.message);
    finish();
  }
  const L = new Live(doc, base, key, admin);
  const tenant = process.env.CALLGATE_TENANT ?? "acme";
  const run = randomBytes(4).toString("hex");
  const agentId = `oapi.${run}`;
  const group = `oapi-${run}`;
  const cdAgent = { name: "Asha K", groups: [group], vendors: { clouddialer: { crm_username: "agent.017" } } };

  // ---- operations
  await L.check("liveness", "GET", "/healthz", { auth: null, expect: [200] });
  await L.check("liveness, headers only", "HEAD", "/healthz", { auth: null, expect: [200] });
  await L.check("readiness", "GET", "/readyz", { auth: null, expect: [200] });
  await L.check("metrics", "GET", "/metrics", {
    auth: null,
    expect: [200],
    assert: (r) =>
      r.headers.get("content-type") !== "text/plain; version=0.0.4; charset=utf-8"
        ? `Content-Type ${r.headers.get("content-type")}`
        : !/^# TYPE callgate_http_requests_total counter$/m.test(r.text) ||
            !/^callgate_scrape_redis_ok 1$/m.test(r.text) ||
            !/^callgate_delivery_queue_depth\{tenant="acme"\} \d+$/m.test(r.text)
          ? "expected families missing from the exposition"
          : null,
  });
  await L.check("request id is echoed", "GET", "/healthz", {
    auth: null,
    headers: { "X-Request-Id": `oapi-check.${run}:1` },
    assert: (r) => (r.headers.get("x-request-id") === `oapi-check.${run}:1` ? null : `X-Request-Id is ${r.headers.get("x-request-id")}`),
  });

  // ---- agents
  await L.check("create an agent", "PUT", `/v1/agents/${agentId}`, {
    body: cdAgent,
    expect: [201],
    assert: (r) => (r.headers.get("location") === `/v1/agents/${agentId}` ? null : `Location is ${r.headers.get("location")}`),
  });
  await L.check("replace an agent", "PUT", `/v1/agents/${agentId}`, { body: cdAgent, expect: [200] });
  await L.check("agent validation error", "PUT", `/v1/agents/${agentId}`, {
    body: { name: "x", groups: "sales", nickname: "y" },
    expect: [400],
  });
  await L.check("get an agent", "GET", `/v1/agents/${agentId}`, {
    expect: [200],
    assert: (r) => (r.json.status === "available" ? null : `status is ${r.json.status}`),
  });
  await L.check("unknown agent", "GET", `/v1/agents/oapi-nobody-${run}`, { expect: [404] });
  await L.check("agent status offline", "PUT", `/v1/agents/${agentId}/status`, {
    body: { status: "offline" },
    expect: [200],
    assert: (r) => (r.json.status === "offline" ? null : `status is ${r.json.status}`),
  });
  await L.check("agent status invalid", "PUT", `/v1/agents/${agentId}/status`, { body: { status: "asleep" }, expect: [400] });
  await L.check("agent status available", "PUT", `/v1/agents/${agentId}/status`, { body: { status: "available" }, expect: [200] });
  await L.check("list a group's agents", "GET", `/v1/agents?group=${group}&limit=1`, {
    expect: [200],
    assert: (r) => (r.json.data.length === 1 && r.json.data[0].id === agentId ? null : "the agent is not listed"),
  });
  await L.check("list agents: bad query", "GET", "/v1/agents?status=asleep&color=blue", { expect: [400] });

  // ---- placing a call
  const idem = `oapi-${run}-1`;
  const callBody = { to: "+91 98765-43210", agent: agentId, reference: `crm-${run}`, tags: { department: "sales" } };
  const placed = await L.check("place a call", "POST", "/v1/calls", {
    headers: { "Idempotency-Key": idem },
    body: callBody,
    expect: [201, 202],
    assert: (r) => (r.headers.get("location") === `/v1/calls/${r.json.id}` ? null : `Location is ${r.headers.get("location")}`),
  });
  const callId = placed?.json?.id;
  if (placed) {
    await L.check("idempotent replay", "POST", "/v1/calls", {
      headers: { "Idempotency-Key": idem },
      body: { tags: { department: "sales" }, reference: `crm-${run}`, agent: agentId, to: "+91 98765-43210" },
      expect: [placed.status],
      assert: (r) =>
        r.headers.get("idempotent-replayed") !== "true"
          ? "no Idempotent-Replayed: true"
          : r.text !== placed.text
            ? "the replayed body differs from the first"
            : null,
    });
  }
  await L.check("same key, other body", "POST", "/v1/calls", {
    headers: { "Idempotency-Key": idem },
    body: { ...callBody, reference: `crm-${run}-other` },
    expect: [422],
    assert: (r) => (r.json.type === "/problems/idempotency-mismatch" ? null : `type is ${r.json.type}`),
  });
  await L.check("call validation error", "POST", "/v1/calls", {
    body: { to: "12", agnt: "x", max_ring_seconds: 3 },
    expect: [400],
    assert: (r) => (r.json.errors.some((e) => e.field === "to") ? null : "errors[] does not name `to`"),
  });
  await L.check("call body not JSON", "POST", "/v1/calls", { raw: "{not json", headers: { "Content-Type": "application/json" }, expect: [400] });
  await L.check("call for an unknown agent", "POST", "/v1/calls", {
    body: { to: "+919876543210", agent: `oapi-nobody-${run}` },
    expect: [404],
  });
  await L.check("call without a key", "POST", "/v1/calls", { auth: null, body: callBody, expect: [401] });
  await L.check("call with a wrong key", "GET", "/v1/calls", { auth: "Bearer not-a-key", expect: [401] });

  // ---- reading calls
  if (callId) {
    await L.check("get a call", "GET", `/v1/calls/${callId}`, {
      expect: [200],
      assert: (r) => (r.json.id === callId ? null : `id is ${r.json.id}`),
    });
    if (process.env.CALLGATE_OTHER_KEY) {
      await L.check("another tenant's call", "GET", `/v1/calls/${callId}`, {
        auth: `Bearer ${process.env.CALLGATE_OTHER_KEY}`,
        expect: [404],
      });
    }
    await L.check("add a participant", "POST", `/v1/calls/${callId}/participants`, {
      body: { number: "+91 98765 11111", max_ring_seconds: 20 },
      expect: [202, 409],
    });
    await L.check("participant validation error", "POST", `/v1/calls/${callId}/participants`, {
      body: { phone: "+919876511111" },
      expect: [400],
    });
    await L.check("flags on a CloudDialer call", "GET", `/v1/calls/${callId}/flags`, {
      expect: [422],
      assert: (r) => (r.json.type === "/problems/unsupported-by-vendor" ? null : `type is ${r.json.type}`),
    });
    await L.check("flags patch validation error", "PATCH", `/v1/calls/${callId}/flags`, {
      body: { bad_actor: "yes" },
      expect: [400],
    });
  }
  // The second tenant has a small rate limit (check.sh): a 429 as documented.
  if (process.env.CALLGATE_OTHER_KEY) {
    let limited = false;
    for (let i = 1; i <= 4 && !limited; i++) {
      const r = await L.check(`rate limit, request ${i}`, "GET", "/v1/calls?limit=1", {
        auth: `Bearer ${process.env.CALLGATE_OTHER_KEY}`,
        expect: [200, 429],
      });
      limited = r?.status === 429;
    }
    if (!limited) fail("rate limit", "no 429 after 4 requests against a burst of 2");
  }
  await L.check("unknown call", "GET", `/v1/calls/call_oapinothing${run}`, { expect: [404] });
  await L.check("get a call: bad query", "GET", `/v1/calls/call_oapinothing${run}?refresh=maybe`, { expect: [400] });
  const page = await L.check("list calls", "GET", "/v1/calls?limit=2", { expect: [200] });
  if (page?.json?.next_cursor) {
    await L.check("list calls, next page", "GET", `/v1/calls?limit=2&cursor=${encodeURIComponent(page.json.next_cursor)}`, { expect: [200] });
  }
  await L.check("list calls by reference", "GET", `/v1/calls?reference=crm-${run}&status=queued`, { expect: [200] });
  await L.check("list calls: bad query", "GET", "/v1/calls?limit=500&status=happy", { expect: [400] });

  // ---- the call's life (the simulator ends it), refresh and recording
  if (callId) {
    let st = null;
    for (let i = 0; i < 60; i++) {
      const r = await L.request("GET", `/v1/calls/${callId}`);
      st = r.status === 200 ? JSON.parse(r.text).status : null;
      if (TERMINAL.has(st)) break;
      await sleep(200);
    }
    await L.check("a finished call", "GET", `/v1/calls/${callId}`, {
      expect: [200],
      assert: (r) => (TERMINAL.has(r.json.status) ? (r.json.events.length > 0 ? null : "no events") : `status still ${r.json.status}`),
    });
    await L.check("refresh from the vendor", "GET", `/v1/calls/${callId}?refresh=true`, {
      expect: [200],
      assert: (r) => (r.headers.get("callgate-refresh") ? null : "no Callgate-Refresh header"),
    });
    await L.check("recording", "GET", `/v1/calls/${callId}/recording`, { expect: [200, 404] });
  }

  // ---- a CCAI call: customer flags
  const ccaiAgent = `oapi.ccai.${run}`;
  await L.check("create a CCAI agent", "PUT", `/v1/agents/${ccaiAgent}`, {
    body: { name: "Jane Doe", email: "jane.doe@example.com", vendors: { ccai: { email: "jane.doe@example.com" } } },
    expect: [201],
  });
  const ccai = await L.check("place a CCAI call", "POST", "/v1/calls", {
    body: { to: "+1 859-657-9625", agent: ccaiAgent, vendor: "ccai" },
    expect: [201, 202, 422],
  });
  if (ccai?.json?.id && ccai.status < 300) {
    await L.check("get flags", "GET", `/v1/calls/${ccai.json.id}/flags`, { expect: [200, 409] });
    await L.check("set flags", "PATCH", `/v1/calls/${ccai.json.id}/flags`, {
      body: { bad_actor: true },
      expect: [200, 409],
      assert: (r) => (r.status !== 200 || r.json.bad_actor === true ? null : "bad_actor is not true"),
    });
    await L.check("participants on a CCAI call", "POST", `/v1/calls/${ccai.json.id}/participants`, {
      body: { number: "+18596570000" },
      expect: [422],
    });
  }
  await L.check("inbound call", "POST", "/v1/calls", {
    body: { to: "+1 859-657-9625", type: "inbound", queue: "5" },
    expect: [201, 202, 422, 503],
  });

  // ---- history (the configuration may have no history vendor: 422)
  await L.check("call history", "GET", "/v1/call-logs?phone_number=%2B9779811789678", { expect: [200, 422] });
  await L.check("call history, dated", "GET", "/v1/call-logs?phone_number=%2B9779811789678&start_date=2026-01-01&end_date=2026-01-31", { expect: [200, 422] });
  await L.check("call history: one date only", "GET", "/v1/call-logs?phone_number=%2B9779811789678&start_date=2026-01-01", { expect: [400] });
  await L.check("call history: range too long", "GET", "/v1/call-logs?phone_number=%2B9779811789678&start_date=2026-01-01&end_date=2026-03-31", { expect: [400] });
  await L.check("call counts", "GET", "/v1/call-logs/counts?phone_number=%2B9779811789678,%2B9779800000000", { expect: [200, 422] });
  await L.check("call counts: bad number", "GET", "/v1/call-logs/counts?phone_number=%2B9779811789678,abc", { expect: [400] });

  // ---- vendor webhooks
  await L.check("webhook with a wrong token", "POST", `/v1/webhooks/clouddialer/not-a-token-${run}`, {
    auth: null,
    body: { uuid: "x", call_status: "ANSWER" },
    expect: [404],
  });
  await L.check("webhook of an unknown vendor", "GET", `/v1/webhooks/nosuchvendor/not-a-token-${run}?a=1`, { auth: null, expect: [404] });
  const cdToken = process.env.CALLGATE_CD_WEBHOOK_TOKEN;
  if (cdToken) {
    const event = {
      uuid: `call_oapiorphan${run}`,
      call_id: `oapi-${run}`,
      call_status: "ANSWER",
      start_time: "2026-01-01T10:00:00Z",
      end_time: "2026-01-01T10:01:00Z",
      duration: 60,
    };
    await L.check("webhook for an unknown call (kept)", "POST", `/v1/webhooks/clouddialer/${cdToken}`, {
      auth: null,
      body: event,
      expect: [202],
    });
    await L.check("webhook retried (duplicate)", "POST", `/v1/webhooks/clouddialer/${cdToken}`, {
      auth: null,
      body: event,
      expect: [200],
      assert: (r) => (r.json.status === "duplicate" ? null : `status is ${r.json.status}`),
    });
    await L.check("webhook payload unusable", "POST", `/v1/webhooks/clouddialer/${cdToken}`, {
      auth: null,
      body: { nothing: 1 },
      expect: [400],
    });
  } else {
    skip("vendor webhooks with a valid token", "CALLGATE_CD_WEBHOOK_TOKEN is not set");
  }

  // ---- the front end's own answers
  await L.check("method not allowed", "DELETE", "/v1/calls", {
    response: "#/components/responses/MethodNotAllowed",
    expect: [405],
  });
  await L.check("unknown path", "GET", `/v1/nothing-here-${run}`, {
    auth: null,
    response: "#/components/responses/NotFound",
    expect: [404],
  });

  // ---- admin
  await L.check("admin routes", "GET", "/admin/routes", { auth: "admin", expect: [200] });
  await L.check("admin refuses a tenant key", "GET", "/admin/routes", { auth: "tenant", expect: [401] });
  await L.check("admin without a token", "GET", "/admin/vendors", { auth: null, expect: [401] });
  await L.check("admin reload", "POST", "/admin/routes/reload", { auth: "admin", expect: [200] });
  await L.check("admin explain", "POST", "/admin/routes/explain", {
    auth: "admin",
    body: { tenant, call: { to: "+919876543210", agent: agentId } },
    expect: [200],
    assert: (r) => (r.json.result?.status === 201 ? null : `result is ${JSON.stringify(r.json.result)}`),
  });
  await L.check("admin explain, no route", "POST", "/admin/routes/explain", {
    auth: "admin",
    body: { tenant, call: { to: "+18596579625", type: "inbound", vendor: "clouddialer" }, at: "2026-07-03T10:00:00Z" },
    expect: [200],
  });
  await L.check("admin explain validation error", "POST", "/admin/routes/explain", {
    auth: "admin",
    body: { tenant: `nobody-${run}`, call: {}, when: "now" },
    expect: [400],
  });
  await L.check("admin vendors", "GET", "/admin/vendors", { auth: "admin", expect: [200] });
  const dead = await L.check("admin dead deliveries", "GET", "/admin/deliveries?state=dead", { auth: "admin", expect: [200, 501] });
  if (dead?.status !== 501) {
    await L.check("admin pending deliveries", "GET", `/admin/deliveries?state=pending&tenant=${tenant}&limit=5`, { auth: "admin", expect: [200] });
    await L.check("admin deliveries: bad query", "GET", "/admin/deliveries?state=lost", { auth: "admin", expect: [400] });
    await L.check("admin replay an unknown delivery", "POST", `/admin/deliveries/evt_oapinothing${run}/replay`, { auth: "admin", expect: [404] });
    await L.check("admin replay dead deliveries", "POST", "/admin/deliveries/replay", { auth: "admin", body: { tenant }, expect: [202] });
    await L.check("admin replay dead: bad body", "POST", "/admin/deliveries/replay", { auth: "admin", body: { tenants: [tenant] }, expect: [400] });
  }

  // ---- tenant events, as the tenant's endpoint received them
  const sink = process.env.CALLGATE_SINK_URL;
  if (sink && callId) {
    await checkEvents(L, sink, callId);
  } else {
    skip("tenant events", "CALLGATE_SINK_URL is not set");
  }

  // ---- clean up
  await L.check("delete an agent", "DELETE", `/v1/agents/${ccaiAgent}`, { expect: [204] });
  await L.check("delete an unknown agent", "DELETE", `/v1/agents/${ccaiAgent}`, { expect: [404] });
  finish();
}

// The events relayed for the call (received by the sink) against webhooks.callEvent.
async function checkEvents(L, sink, callId) {
  const name = "tenant events fit webhooks.callEvent";
  const op = L.doc.webhooks?.callEvent?.post;
  if (!op) {
    fail(name, "webhooks.callEvent.post is not documented");
    return;
  }
  const schema = deref(L.doc, op.requestBody).content["application/json"].schema;
  const validate = L.compile(schema);
  const headerParams = (op.parameters ?? []).map((p) => deref(L.doc, p)).filter((p) => p.in === "header");
  const secret = process.env.CALLGATE_WEBHOOK_SECRET;
  let events = [];
  for (let i = 0; i < 50; i++) {
    try {
      const res = await fetch(sink, { signal: AbortSignal.timeout(10000) });
      const all = (await res.json()).events ?? [];
      events = all.filter((e) => {
        try {
          return JSON.parse(e.body).data?.id === callId;
        } catch {
          return false;
        }
      });
    } catch (e) {
      fail(name, `cannot read ${sink}: ${e.message}`);
      return;
    }
    if (events.some((e) => TERMINAL.has(JSON.parse(e.body).data?.status))) break;
    await sleep(200);
  }
  if (events.length === 0) {
    fail(name, `no event for ${callId} reached ${sink}`);
    return;
  }
  const errs = [];
  for (const e of events) {
    let body;
    try {
      body = JSON.parse(e.body);
    } catch (x) {
      errs.push(`a body is not JSON: ${x.message}`);
      continue;
    }
    if (!validate(body)) errs.push(`${body.id}: ${ajvErrors(validate)}`);
    for (const p of headerParams) {
      const v = e.headers?.[p.name.toLowerCase()];
      if (v === undefined) {
        if (p.required) errs.push(`${body.id}: header ${p.name} missing`);
        continue;
      }
      const hv = L.compile(p.schema);
      if (!hv(v)) errs.push(`${body.id}: header ${p.name} "${v}" ${ajvErrors(hv)}`);
    }
    if (e.headers?.["webhook-id"] !== body.id) errs.push(`${body.id}: webhook-id is ${e.headers?.["webhook-id"]}`);
    if (secret && e.headers?.["webhook-signature"]) {
      const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
      const want = createHmac("sha256", key)
        .update(`${e.headers["webhook-id"]}.${e.headers["webhook-timestamp"]}.${e.body}`)
        .digest("base64");
      const got = e.headers["webhook-signature"].split(" ").map((s) => s.replace(/^v1,/, ""));
      if (!got.includes(want)) errs.push(`${body.id}: the signature does not verify`);
    }
  }
  const types = events.map((e) => JSON.parse(e.body).type).join(", ");
  if (errs.length === 0) ok(`${name} (${events.length} for ${callId}: ${types}${secret ? "; signatures verified" : ""})`);
  else fail(name, errs.join("; "));
}

// ---- main -------------------------------------------------------------------

const [mode, ...args] = process.argv.slice(2);
if (mode === "doc") {
  await docMode();
} else if (mode === "live" && args.length === 3) {
  await liveMode(...args);
} else {
  console.error("usage: validate.mjs doc | validate.mjs live BASE_URL TENANT_KEY ADMIN_TOKEN");
  process.exit(2);
}
