// The peer a CRM team would write instead of callgate: POST /v1/calls with a
// bearer check, an idempotency claim in Redis, a JSON translation to
// CloudDialer's request, one keep-alive upstream call and the neutral answer.
// Written the ordinary way (node:http, the redis client, async/await); one
// process. Settings come from the environment (see peers.sh).
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');
const { createClient } = require('redis');

const port = Number(process.env.PORT);
const upstreamPort = Number(process.env.UPSTREAM_PORT);
const keyHashes = (process.env.API_KEY_SHA256 || '').split(',').map((h) => Buffer.from(h, 'hex'));
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const redis = createClient({ socket: { host: '127.0.0.1', port: Number(process.env.REDIS_PORT) } });

function authorized(header) {
  if (!header || !header.startsWith('Bearer ')) return false;
  const digest = crypto.createHash('sha256').update(header.slice(7)).digest();
  let ok = false;
  for (const h of keyHashes) ok = crypto.timingSafeEqual(h, digest) || ok;
  return ok;
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

// CloudDialer takes Indian numbers in their 10-digit national form.
function toVendor(call, callId) {
  if (typeof call.to !== 'string' || !/^\+91[6-9]\d{9}$/.test(call.to)) return null;
  return {
    from_number: '919800000000',
    to_number: call.to.slice(3),
    uuid: callId,
    crm_username: String(call.agent || ''),
    recording: call.record !== false,
    max_ring_time: 30,
  };
}

function post(path, body) {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1', port: upstreamPort, path, method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text),
        Authorization: 'Bearer cd-test-key' },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

async function placeCall(req, res, raw) {
  if (!authorized(req.headers.authorization)) return send(res, 401, { title: 'unauthorized' });
  const idem = req.headers['idempotency-key'];
  if (!idem) return send(res, 400, { title: 'Idempotency-Key is required' });
  let call;
  try { call = JSON.parse(raw); } catch { return send(res, 400, { title: 'invalid JSON' }); }
  const key = `idem:${idem}`;
  const seen = await redis.get(key);
  if (seen) return send(res, 200, JSON.parse(seen));
  const callId = crypto.randomUUID();
  if (!(await redis.set(key, '{}', { NX: true, EX: 86400 }))) return send(res, 409, { title: 'in flight' });
  const body = toVendor(call, callId);
  if (!body) return send(res, 422, { title: 'CloudDialer accepts only +91 numbers' });
  const up = await post('/calls', body);
  let answer;
  try { answer = JSON.parse(up.body); } catch { answer = {}; }
  if (up.status !== 200 || answer.status !== 'success') return send(res, 502, { title: 'vendor refused' });
  send(res, 201, {
    id: callId, status: 'queued', vendor: 'clouddialer', vendor_call_id: String(answer.call_id),
    to: call.to, agent: call.agent, reference: call.reference,
  });
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return send(res, 200, { status: 'ok' });
  if (req.method !== 'POST' || req.url !== '/v1/calls') return send(res, 404, { title: 'not found' });
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    placeCall(req, res, Buffer.concat(chunks).toString()).catch(() => send(res, 500, { title: 'internal' }));
  });
});
server.keepAliveTimeout = 60000;

redis.on('error', (e) => console.error('redis:', e.message));
redis.connect().then(() => server.listen(port, '127.0.0.1'));
