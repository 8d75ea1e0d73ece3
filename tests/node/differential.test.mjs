// Differential test: the same seeded random sessions played against real Node Faye 1.4.3 and
// against the server under test, compared reply for reply.
//
// A session is a few HTTP requests to one mount. Each request carries one message or a batch
// of up to four, drawn from every kind a client (or a careless one) sends: handshakes good and
// bad, connects with `advice.timeout` 0 (so no reply waits), subscribes and unsubscribes to good
// and bad patterns, publishes with clientIds inside `data` and `ext`, forged and missing
// clientIds, batches naming several clients, and messages that are not messages at all. The
// clientIds each server hands out differ, so the messages name clients by slot ("the second
// client this session handshook") and each server's ids are rendered in and renamed back out.
//
// Compared per request: the HTTP status, the multiset of replies to meta and publish messages
// (Faye answers a batch in completion order; spec section 3, rule 5), and the delivered messages
// in the order they arrived. Then, at the end of a session, whatever each live client still has
// queued. Every difference fails the test with the seed, the session and both answers, so it can
// be replayed with BAYOU_DIFF_SEED and BAYOU_DIFF_SESSIONS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';

const SEED = Number(process.env.BAYOU_DIFF_SEED || 20261207);
const SESSIONS = Number(process.env.BAYOU_DIFF_SESSIONS || 300);
const TIMEOUT = 5; // seconds a connect may be held; every connect here asks for 0
const REQUEST_MS = 4_000; // every connect asks for 0, so nothing is held this long
const FORGED = 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz';

/** mulberry32: a small seeded generator, so a failing session can be replayed exactly. */
function generator(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (list) => list[int(list.length)];
  return { next, int, pick, chance: (p) => next() < p };
}

// A client reference, rendered per server: a slot handed out by an earlier handshake, a forged
// id, or nothing at all.
const slot = (k) => ({ $slot: k });

// Bodies JSON.stringify cannot write: duplicate keys, escapes in names.
const RAW = [
  '{"channel":"/b","channel":"/a","data":{"n":1}}',
  '{"channel":"/a","data":{"n":2},"data":{"n":3}}',
  '{"channel":"\\/a","data":{"n":4}}',
  '{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"version":"2.0"}',
];

const CHANNELS = ['/a', '/a/b', '/b', '/users/1'];
const PATTERNS = ['/a', '/a/*', '/a/**', '/b', '/**', '/users/1'];
const BAD_PATTERNS = ['a', '/meta/connect', '/service/x', '/a/**/b', '', '/a/*/c', 7, null];
const BAD_CHANNELS = ['/a/*', '/a/**', 'nope', '', null, 5, '/meta/bogus', '/meta/subscribe'];

function clientRef(rng, slots) {
  if (slots > 0 && rng.chance(0.85)) return slot(rng.int(slots));
  return rng.pick([FORGED, undefined, '', 17, null]);
}

function handshake(rng) {
  const m = { channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'] };
  switch (rng.int(10)) {
    case 0: delete m.version; break;
    case 1: delete m.supportedConnectionTypes; break;
    case 2: m.supportedConnectionTypes = ['carrier-pigeon']; break;
    case 3: m.supportedConnectionTypes = ['websocket', 'long-polling', 'callback-polling']; break;
    case 4: m.ext = { token: 'abc' }; break;
    case 5: m.minimumVersion = '1.0beta'; break;
    case 6: m.supportedConnectionTypes = rng.pick([[1, 'long-polling'], [null], ['long-polling', {}], 'long-polling']); break;
    default: break;
  }
  return m;
}

/** One message of a random kind. `slots` is how many clients the session may name. */
function message(rng, slots) {
  const client = () => clientRef(rng, slots);
  switch (rng.int(15)) {
    case 0: case 1: return handshake(rng);
    case 2: case 3: {
      const m = { channel: '/meta/connect', clientId: client(), connectionType: 'long-polling', advice: { timeout: 0 } };
      if (rng.chance(0.1)) delete m.connectionType;
      if (rng.chance(0.05)) m.connectionType = 'carrier-pigeon';
      return m;
    }
    case 4: case 5: {
      const bad = rng.chance(0.2);
      const subscription = bad ? rng.pick(BAD_PATTERNS)
        : rng.chance(0.15) ? [rng.pick(PATTERNS), rng.pick(PATTERNS)] : rng.pick(PATTERNS);
      return { channel: '/meta/subscribe', clientId: client(), subscription };
    }
    case 6: return { channel: '/meta/unsubscribe', clientId: client(), subscription: rng.pick(PATTERNS) };
    case 7: return { channel: '/meta/disconnect', clientId: client() };
    case 8: case 9: case 10: {
      // The Faye client writes `data` before `clientId`: a clientId inside data is data.
      const m = { channel: rng.pick(CHANNELS), data: { n: rng.int(1000) } };
      if (rng.chance(0.3)) m.data.clientId = client();
      if (rng.chance(0.2)) m.ext = { clientId: client(), note: 'x' };
      if (rng.chance(0.7)) m.clientId = client();
      if (rng.chance(0.05)) delete m.data;
      return m;
    }
    case 11: return { channel: rng.pick(BAD_CHANNELS), clientId: client(), data: { n: 1 } };
    case 12: return rng.pick([{ channel: '/service/echo', clientId: client(), data: { q: 1 } }, { clientId: client() }, { data: 1 }]);
    case 13: return rng.pick([null, 1, 'text', [], true, { channel: '/meta/unknown', clientId: client() }]);
    default: return { $raw: rng.pick(RAW) };
  }
}

/** A session: a list of requests, each a message or a batch. */
function session(rng) {
  const steps = [];
  let slots = 0;
  const first = rng.int(3) + 1;
  for (let i = 0; i < first; i++) steps.push(handshake(rng));
  slots = first;
  const more = rng.int(9) + 3;
  for (let s = 0; s < more; s++) {
    const size = rng.chance(0.5) ? 1 : rng.int(4) + 1;
    const batch = [];
    for (let i = 0; i < size; i++) {
      let m = message(rng, slots);
      // Two connects for one client in one batch hang Node Faye forever (README: deliberate).
      if (m && m.channel === '/meta/connect' && batch.some((o) => o && o.channel === '/meta/connect')) m = handshake(rng);
      if (m && typeof m === 'object' && !Array.isArray(m) && rng.chance(0.6)) m.id = String(s * 10 + i);
      batch.push(m);
    }
    steps.push(size === 1 && rng.chance(0.5) ? batch[0] : batch);
    slots += batch.filter((m) => m && m.channel === '/meta/handshake').length;
  }
  return steps;
}

/** A server and the clientIds it has handed out this session, by slot. */
class Side {
  constructor(url) { this.url = `${url}/faye`; this.ids = []; }

  render(value) {
    const raws = [];
    const text = JSON.stringify(value, (_, v) => {
      if (v && typeof v === 'object' && '$slot' in v) return this.ids[v.$slot] ?? FORGED;
      if (v && typeof v === 'object' && '$raw' in v) return `$raw${raws.push(v.$raw) - 1}$`;
      return v;
    });
    return text.replace(/"\$raw(\d+)\$"/g, (_, k) => raws[Number(k)]);
  }

  async post(body) {
    let res, text;
    try {
      res = await fetch(this.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(REQUEST_MS) });
      text = await res.text();
    } catch (error) {
      return { status: 0, json: `no answer: ${error.name}` };
    }
    let json;
    try { json = JSON.parse(text); } catch { json = text; }
    if (Array.isArray(json)) {
      for (const r of json) {
        if (r && r.channel === '/meta/handshake' && r.successful) this.ids.push(r.clientId);
      }
    }
    return { status: res.status, json };
  }

  /** A reply with this side's clientIds renamed to their slots, wherever they appear. */
  rename(value) {
    const text = JSON.stringify(value ?? null);
    const renamed = this.ids.reduce((t, id, k) => t.split(id).join(`<C${k}>`), text);
    return JSON.parse(renamed);
  }
}

const canonical = (v) => JSON.stringify(v, (_, x) => (x && typeof x === 'object' && !Array.isArray(x)
  ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, x[k]])) : x));

/**
 * Delivered messages as one list per channel, each in arrival order. Order is kept per channel
 * (README: messages to different channels in one batch may reach a wildcard subscriber in
 * another order, since different workers own them).
 */
function byChannel(messages) {
  const out = {};
  for (const m of messages) (out[canonical(m && m.channel)] ??= []).push(canonical(m));
  return out;
}

/** What a response says, in a form both servers must agree on. */
function view(side, { status, json }) {
  const body = side.rename(json);
  if (!Array.isArray(body)) return { status, body: typeof body === 'string' ? 'text' : body };
  const isReply = (r) => r && typeof r === 'object' && ('successful' in r || 'error' in r);
  const replies = body.filter(isReply).map(canonical).sort();
  return { status, replies, deliveries: byChannel(body.filter((r) => !isReply(r))) };
}

/** Connects (advice.timeout 0) for every live client until nothing more arrives. */
async function drain(side, live) {
  const out = {};
  for (const k of live) {
    const got = [];
    for (let round = 0; round < 3; round++) {
      const body = side.render([{ channel: '/meta/connect', clientId: slot(k), connectionType: 'long-polling', advice: { timeout: 0 } }]);
      const { json } = await side.post(body);
      const delivered = Array.isArray(json) ? json.filter((r) => r && !('successful' in r)) : [];
      got.push(...side.rename(delivered));
      if (delivered.length === 0) break;
    }
    out[k] = byChannel(got);
  }
  return out;
}

async function play(steps, faye, bayou) {
  for (const [i, step] of steps.entries()) {
    const [a, b] = await Promise.all([faye.post(faye.render(step)), bayou.post(bayou.render(step))]);
    const va = view(faye, a);
    const vb = view(bayou, b);
    if (canonical(va) !== canonical(vb)) return { step: i, request: faye.render(step), faye: va, bayou: vb };
  }
  const live = faye.ids.map((_, k) => k);
  const [da, db] = await Promise.all([drain(faye, live), drain(bayou, live)]);
  if (canonical(da) !== canonical(db)) {
    return { step: 'drain', requests: steps.map((st) => faye.rename(JSON.parse(faye.render(st)))), faye: da, bayou: db };
  }
  return null;
}

test(`${SESSIONS} random sessions (seed ${SEED}) get the same replies as Node Faye 1.4.3`, async (t) => {
  const faye = await startServer({ kind: 'faye', timeout: TIMEOUT });
  t.after(() => faye.stop());
  const server = await startServer({ timeout: TIMEOUT, extraArgs: ['--handshake-rate', '0', '--max-clients-per-ip', '0'] });
  t.after(() => server.stop());

  const rng = generator(SEED);
  const differences = [];
  for (let n = 0; n < SESSIONS; n++) {
    const steps = session(rng);
    const diff = await play(steps, new Side(faye.url), new Side(server.url));
    if (diff) differences.push({ session: n, ...diff });
  }
  if (process.env.BAYOU_DIFF_OUT) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(process.env.BAYOU_DIFF_OUT, JSON.stringify(differences, null, 1));
  }
  const shown = differences.slice(0, 5).map((d) => JSON.stringify(d, null, 1)).join('\n');
  assert.equal(differences.length, 0,
    `${differences.length} of ${SESSIONS} sessions differ (seed ${SEED}); the first:\n${shown}\n${server.output()}`);
});
