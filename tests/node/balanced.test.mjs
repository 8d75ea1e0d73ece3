// Bayou as the product runs Faye: several processes behind a load balancer that spreads every
// request round-robin, on one redis-server (issue 18). Real parts only: Debian's HAProxy (per
// request round-robin, health checks on each process's /readyz the way an ALB target group
// checks), a real redis-server, Bayou processes, and real Faye clients: Node over WebSocket,
// Node long-polling, and the browser client in headless Chromium (WebSocket, long-polling by
// CORS, and EventSource from a page on the balancer's own origin, whose XHR requests reaching
// the other process are relayed to its stream's process). A publisher POSTs a numbered message per user channel through the balancer.
//
// Each scenario counts, per client, lost, duplicated and out-of-order messages and
// rehandshakes, and requires none of any: in steady state, and through a rolling deploy
// (start A2, SIGTERM A, start B2, SIGTERM B) that hands every session over; and through the
// loss of each process in turn (SIGKILL A, start A2, SIGKILL B, start B2), where a process
// adopts the dead one's sessions and replays the log from its checkpoint: duplicates are
// allowed there (what was in flight at the crash) and counted.
//
// ./test.sh runs this file once (not per worker/driver combination). Nothing is timed: every
// wait is bounded only so that a hang fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import faye from 'faye';
import { chromium } from 'playwright-core';
import { startServer, SERVER_KIND, CHROMIUM, CHROMIUM_ARGS } from './server.mjs';
import { startRedis, freePort } from './redis.mjs';
import { until as untilWithin, scrapeMetrics } from './poll.mjs';
import { startBalancer } from './haproxy.mjs';

const WAIT_MS = 60_000;
const PER_TEST = { timeout: 240_000 };
const NODE_WS = 12;
const NODE_LP = 6;
/** Messages per second, over all users. */
const RATE = Number(process.env.BAYOU_BALANCED_RATE || 100);

const until = (check, what, ms = WAIT_MS) => untilWithin(check, what, ms);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- The processes --------------------------------------------------------------------------

/** A slot behind the balancer: fixed ports, a process started and stopped at will. */
async function slot(name) {
  const port = await freePort();
  const adminPort = await freePort();
  return { name, port, adminPort, checkPort: adminPort, server: null };
}

async function startIn(s, redis) {
  s.server = await startServer({
    timeout: 10,
    listen: s.port,
    adminListen: `127.0.0.1:${s.adminPort}`,
    extraArgs: ['--engine', redis.url, '--drain-secs', '15'],
  });
  await until(async () => (await metrics(s)).bayou_backplane_up === 1, `${s.name}: the backplane up`);
}

const metrics = (s) => scrapeMetrics(`http://127.0.0.1:${s.adminPort}`);

/** SIGTERM, then waits (bounded) for the drain to end and the process to exit. */
async function drain(s) {
  const child = s.server.process;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(WAIT_MS).then(() => { throw new Error(`${s.name} did not exit`); })]);
  const out = s.server.output();
  s.server = null;
  return out;
}

/**
 * How a drain ended, from its log: every session moved while its client came back, or the
 * window ended and the sessions whose clients had not come back yet were left in the
 * directory (the next process takes them whole; the scenario's counts judge that).
 */
function handedOver(text) {
  const output = text.replace(/\x1b\[[0-9;]*m/g, '');
  if (/every session handed over/.test(output)) return 'every session handed over';
  const left = /sessions=(\d+) parked=(\w+)/.exec(output);
  if (left) return `drain window ended: ${left[1]} session(s) left in the directory (written in time: ${left[2]})`;
  return 'drain window ended with connections still open';
}

// --- The clients ----------------------------------------------------------------------------

/** A Node faye.Client for user `i`: what it received (by number) and its handshakes. */
function nodeClient(url, i, transport) {
  const c = new faye.Client(`${url}/faye`);
  if (transport === 'long-polling') c.disable('websocket');
  c.user = i;
  c.kind = `node ${transport}`;
  c.numbers = [];
  c.handshakes = 0;
  c.addExtension({
    outgoing: (m, cb) => { if (m.channel === '/meta/handshake') c.handshakes++; cb(m); },
  });
  c.ready = c.subscribe(`/users/${i}`, (data) => c.numbers.push(data.n));
  c.report = async () => ({ numbers: c.numbers, handshakes: c.handshakes });
  c.stop = async () => { await Promise.race([Promise.resolve(c.disconnect()), sleep(3000)]); };
  return c;
}

function pageHtml(url, i, disable) {
  return `<!doctype html><html><head><meta charset="utf-8">
<script src="${url}/faye/client.js"></script></head><body><script>
  window.numbers = []; window.handshakes = 0;
  const client = new Faye.Client(${JSON.stringify(`${url}/faye`)});
  ${disable ? `client.disable(${JSON.stringify(disable)});` : ''}
  client.addExtension({ outgoing: (m, cb) => { if (m.channel === '/meta/handshake') window.handshakes++; cb(m); } });
  client.subscribe('/users/${i}', (data) => window.numbers.push(data.n)).then(
    () => { window.ready = true; }, (e) => { window.failed = String(e && e.message || e); });
</script></body></html>`;
}

/**
 * The browser client on the balancer's origin with WebSocket disabled: it takes EventSource
 * (a stream on one process, connects and subscribes by XHR to any). The user is in the query.
 */
const SAME_ORIGIN_PAGE = `<!doctype html><html><head><meta charset="utf-8">
<script src="/faye/client.js"></script></head><body><script>
  window.numbers = []; window.handshakes = 0; window.types = [];
  const user = new URLSearchParams(location.search).get('user');
  const client = new Faye.Client('/faye');
  window.client = client;
  client.disable('websocket');
  client.addExtension({ outgoing: (m, cb) => {
    if (m.channel === '/meta/handshake') window.handshakes++;
    if (m.channel === '/meta/connect' && !window.types.includes(m.connectionType)) window.types.push(m.connectionType);
    cb(m);
  } });
  client.subscribe('/users/' + user, (data) => window.numbers.push(data.n)).then(
    () => { window.ready = true; }, (e) => { window.failed = String(e && e.message || e); });
</script></body></html>`;

/** The EventSource browser client for user `i`, on the balancer's origin. */
async function eventSourceClient(browser, url, i) {
  const page = await browser.newPage();
  await page.goto(`${url}/same-origin.html?user=${i}`);
  const subscribed = async () => {
    await page.waitForFunction(() => window.ready || window.failed, null, { timeout: WAIT_MS });
    const failed = await page.evaluate(() => window.failed);
    if (failed) throw new Error(`browser subscribe failed: ${failed}`);
  };
  // The Faye client probes EventSource once and keeps long-polling if the probe failed. Seen
  // once in test.sh (stop 27): a page that settled on long-polling is loaded again, at most
  // twice, and said so, so the scenario runs with the transport it is about.
  const onEventSource = async () => {
    for (let tries = 0; ; tries++) {
      await subscribed();
      const upgraded = await page.waitForFunction(() => window.types.includes('eventsource'), null, { timeout: 10_000 })
        .then(() => true, () => false);
      if (upgraded) return;
      const types = await page.evaluate(() => window.types);
      assert.ok(tries < 2, `the EventSource client connected by ${types} after ${tries + 1} loads`);
      console.log(`# EventSource client settled on ${types}: loading the page again`);
      await page.reload();
    }
  };
  return {
    user: i,
    kind: 'browser eventsource',
    ready: onEventSource(),
    report: () => page.evaluate(() => ({
      numbers: window.numbers, handshakes: window.handshakes, types: window.types,
    })),
    /** A publish from the page (by XHR, to whichever process the balancer picks). */
    publish: () => page.evaluate(() => window.client.publish('/echo', { from: 'page' })),
    stop: () => page.close(),
  };
}

/** A page on a second origin (so long-polling goes by CORS) with the browser client. */
async function browserClient(browser, url, i, disable) {
  const html = pageHtml(url, i, disable);
  const pages = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((r) => pages.listen(0, '127.0.0.1', r));
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${pages.address().port}/app.html`);
  const c = {
    user: i,
    kind: disable ? 'browser long-polling' : 'browser websocket',
    ready: page.waitForFunction(() => window.ready || window.failed, null, { timeout: WAIT_MS })
      .then(async () => {
        const failed = await page.evaluate(() => window.failed);
        if (failed) throw new Error(`browser subscribe failed: ${failed}`);
      }),
    report: () => page.evaluate(() => ({ numbers: window.numbers, handshakes: window.handshakes })),
    stop: async () => {
      await page.close();
      pages.closeAllConnections();
      await new Promise((r) => pages.close(r));
    },
  };
  return c;
}

/** Publishes numbered messages to every user in turn through the balancer until stopped. */
function publisher(url, users) {
  const accepted = new Map(users.map((u) => [u, []]));
  let stopping = false;
  let failed = 0;
  /** Why each refused or failed publish was (the publisher would retry them). */
  const reasons = [];
  let n = 0;
  const run = (async () => {
    while (!stopping) {
      const user = users[n % users.length];
      n++;
      const body = JSON.stringify({ channel: `/users/${user}`, data: { n } });
      try {
        const res = await fetch(`${url}/faye`, {
          method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
        });
        const text = await res.text();
        let reply = null;
        try { reply = JSON.parse(text); } catch { /* judged below */ }
        if (res.status === 200 && reply?.[0]?.successful) accepted.get(user).push(n);
        else { failed++; reasons.push(`${res.status} ${text.slice(0, 120)}`); }
      } catch (e) {
        failed++;
        reasons.push(String(e?.cause?.code || e?.message || e));
      }
      await sleep(1000 / RATE);
    }
  })();
  return {
    accepted,
    progress: () => ({ sent: n, failed }),
    reasons,
    async stop() { stopping = true; await run; return failed; },
  };
}

const firsts = (numbers) => numbers.filter((n, k) => numbers.indexOf(n) === k);

/** Per client: lost, duplicated and out-of-order messages, and rehandshakes. */
async function tally(clients, accepted) {
  const rows = [];
  for (const c of clients) {
    const { numbers, handshakes, types } = await c.report();
    if (c.kind === 'browser eventsource') {
      assert.ok(types.includes('eventsource'), `the EventSource client connected by ${types}`);
    }
    const want = accepted.get(c.user);
    const got = new Set(numbers);
    rows.push({
      client: `${c.kind} /users/${c.user}`,
      lost: want.filter((n) => !got.has(n)).length,
      duplicated: numbers.length - got.size,
      // Judged on first copies, so that a crash's replayed duplicates do not count twice.
      outOfOrder: firsts(numbers).filter((n, k, f) => k > 0 && n < f[k - 1]).length,
      rehandshakes: handshakes - 1,
      received: numbers.length,
      accepted: want.length,
    });
  }
  return rows;
}

/** Requests relayed to the process of an EventSource stream, over the processes running. */
async function relayedTotal(slots) {
  let relayed = 0;
  for (const s of slots.filter((x) => x.server)) {
    relayed += (await metrics(s))['bayou_backplane_session_moves_total{outcome="relayed"}'];
  }
  return relayed;
}

async function scenario(t, run, { crash = false } = {}) {
  if (SERVER_KIND === 'faye') return t.skip('the Redis engine options are Bayou\'s');
  const redis = await startRedis();
  const slots = [await slot('a'), await slot('b'), await slot('a2'), await slot('b2')];
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  let lb;
  const clients = [];
  try {
    await startIn(slots[0], redis);
    await startIn(slots[1], redis);
    lb = await startBalancer(slots, { page: SAME_ORIGIN_PAGE });
    await lb.waitStates({ a: 'UP', b: 'UP', a2: 'DOWN', b2: 'DOWN' });
    let user = 0;
    for (let k = 0; k < NODE_WS; k++) clients.push(nodeClient(lb.url, user++, 'websocket'));
    for (let k = 0; k < NODE_LP; k++) clients.push(nodeClient(lb.url, user++, 'long-polling'));
    clients.push(await browserClient(browser, lb.url, user++));
    clients.push(await browserClient(browser, lb.url, user++, 'websocket'));
    clients.push(await eventSourceClient(browser, lb.url, user++));
    await Promise.all(clients.map((c) => c.ready));
    const pub = publisher(lb.url, clients.map((c) => c.user));
    await run({ slots, redis, lb, pub, clients });
    const failed = await pub.stop();
    if (pub.reasons.length) t.diagnostic(`publishes refused or failed: ${[...new Set(pub.reasons)].join('; ')}`);
    // Everything accepted arrives (bounded wait), then nothing more may come.
    const accepted = pub.accepted;
    const total = [...accepted.values()].reduce((a, v) => a + v.length, 0);
    await until(async () => {
      const rows = await tally(clients, accepted);
      return rows.every((r) => r.lost === 0);
    }, 'every accepted message at its client', 30_000).catch(() => {});
    await sleep(500);
    const rows = await tally(clients, accepted);
    const sum = (k) => rows.reduce((a, r) => a + r[k], 0);
    t.diagnostic(`accepted ${total}, publishes refused or failed ${failed}; lost ${sum('lost')}, ` +
      `duplicated ${sum('duplicated')}, out of order ${sum('outOfOrder')}, rehandshakes ${sum('rehandshakes')}`);
    // A crash may repeat what was in flight when it happened, and nothing else.
    const bad = rows.filter((r) => r.lost || (!crash && r.duplicated) || r.outOfOrder || r.rehandshakes);
    assert.deepEqual(bad, [], 'every client got every accepted message once, in order, on its first session');
    // A drain refuses new connections (the balancer retries them elsewhere) and answers what
    // it has: no publish fails. A crash may fail the requests it had in flight.
    if (!crash) assert.equal(failed, 0, `publishes failed: ${pub.reasons.join('; ')}`);
    assert.ok(total > 0, 'messages were published');
    return rows;
  } finally {
    for (const c of clients) await c.stop().catch(() => {});
    await browser.close().catch(() => {});
    if (lb) await lb.stop();
    for (const s of slots) if (s.server) await s.server.stop();
    await redis.kill();
  }
}

test('steady state through a round-robin balancer: nothing lost, nothing repeated', PER_TEST, async (t) => {
  await scenario(t, async ({ slots, clients }) => {
    await sleep(4000);
    // Requests really hop between the processes, and their sessions follow.
    let moves = 0;
    for (const s of slots.slice(0, 2)) {
      moves += (await metrics(s))['bayou_backplane_session_moves_total{outcome="in"}'];
    }
    t.diagnostic(`session moves: ${moves}`);
    assert.ok(moves > 0, 'sessions moved between the processes');
    // The EventSource client's XHR requests that reach the other process are relayed to its
    // stream's process: publish from the page until one is (bounded).
    const es = clients.find((c) => c.kind === 'browser eventsource');
    let tries = 0;
    await until(async () => {
      tries++;
      await es.publish();
      return (await relayedTotal(slots)) > 0;
    }, 'a request of the EventSource client relayed', 30_000);
    t.diagnostic(`EventSource client: a publish relayed after ${tries} tries`);
  });
});

test('a rolling deploy hands every session over: no rehandshake, nothing lost', PER_TEST, async (t) => {
  await scenario(t, async ({ slots, redis, lb }) => {
    const [a, b, a2, b2] = slots;
    await sleep(1000);
    await startIn(a2, redis);
    await lb.waitStates({ a2: 'UP' });
    const outA = await drain(a);
    t.diagnostic(`A: ${handedOver(outA)}`);
    await startIn(b2, redis);
    await lb.waitStates({ b2: 'UP' });
    const outB = await drain(b);
    t.diagnostic(`B: ${handedOver(outB)}`);
    await sleep(1000);
  });
});

test('losing each process in turn loses nothing: sessions are adopted and replayed', PER_TEST, async (t) => {
  await scenario(t, async ({ slots, redis, lb, pub }) => {
    const [a, b, a2, b2] = slots;
    await sleep(1500);
    a.server.process.kill('SIGKILL');
    a.server = null;
    await startIn(a2, redis);
    await lb.waitStates({ a: 'DOWN', a2: 'UP' });
    await sleep(1500);
    b.server.process.kill('SIGKILL');
    b.server = null;
    await startIn(b2, redis);
    await lb.waitStates({ b: 'DOWN', b2: 'UP' });
    await sleep(2000);
    // B's clients come back (bounded wait): A2 and B2 adopt B's sessions, and A's that B had.
    let adopted = 0;
    await until(async () => {
      adopted = 0;
      for (const s of [a2, b2]) {
        adopted += (await metrics(s))['bayou_backplane_session_moves_total{outcome="adopted"}'];
      }
      return adopted > 0;
    }, 'sessions adopted by the new processes');
    t.diagnostic(`sessions adopted by A2 and B2: ${adopted}`);
  }, { crash: true });
});
