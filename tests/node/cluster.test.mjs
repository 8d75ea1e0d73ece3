// Several Bayou processes on one real redis-server (--engine redis://..., issue 7), with the
// real Node faye.Client on each: a publish through any process reaches every subscriber
// exactly once, wildcards included; a process without subscribers receives nothing from Redis;
// killing Redis keeps local delivery working and cross-process delivery resumes once Redis is
// back, without restarting Bayou; a client moved to another process rehandshakes there.
//
// ./test.sh runs this file once (not per worker/driver combination). "Exactly once" is checked
// without timing: after the expected messages, the same publisher sends a marker on the same
// channel; order per publisher and channel is kept, so a duplicate would arrive before it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import faye from 'faye';
import { startServer, SERVER_KIND } from './server.mjs';
import { startRedis, redisCommand } from './redis.mjs';
import { until as untilWithin, scrapeMetrics } from './poll.mjs';

const WAIT_MS = 30_000;
const until = (check, what) => untilWithin(check, what, WAIT_MS);
const PER_TEST = { timeout: 120_000 };

/** A Bayou process on the backplane; resolves once its backplane is up. */
async function startNode(redis) {
  const server = await startServer({ timeout: 10, extraArgs: ['--engine', redis.url] });
  await until(() => /admin on (http:\/\/[\d.:]+)/.test(server.output()), 'the admin line');
  const admin = /admin on (http:\/\/[\d.:]+)/.exec(server.output())[1];
  const node = { ...server, admin, metrics: () => metrics(admin) };
  await until(async () => (await node.metrics()).bayou_backplane_up === 1, 'the backplane up');
  return node;
}

const metrics = scrapeMetrics;

/**
 * A real faye.Client on `url` recording the data of every message the server sends it (an
 * incoming extension sees each message once; the client then calls every matching
 * subscription's callback, which would count one message several times).
 */
function client(url, { transport = 'websocket' } = {}) {
  const c = new faye.Client(`${url}/faye`, { retry: 0.2 });
  if (transport === 'long-polling') c.disable('websocket');
  c.got = [];
  c.addExtension({
    incoming: (message, callback) => {
      if (!message.channel.startsWith('/meta/')) c.got.push(message.data);
      callback(message);
    },
  });
  c.listen = async (...channels) => {
    for (const ch of channels) await c.subscribe(ch, () => {});
  };
  return c;
}

async function ingest(url, channel, data) {
  const res = await fetch(`${url}/faye`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ channel, data }),
  });
  assert.equal(res.status, 200);
}

/**
 * Waits for every marker (each publisher's last message on a channel) at `c`, then checks that
 * `c` got exactly `expected`: a duplicate of an earlier message would have come before a marker.
 */
async function gotExactly(c, markers, expected) {
  await until(() => markers.every((m) => c.got.includes(m)), `${markers} at a client`);
  assert.deepEqual(sorted(c.got), sorted(expected));
}

/** Waits for `marker` in c.got, then returns what came before it. */
async function before(c, marker) {
  await until(() => c.got.includes(marker), `${marker} at a client`);
  return c.got.slice(0, c.got.indexOf(marker));
}

const sorted = (xs) => [...xs].sort();

async function stopAll(clients, nodes, redis) {
  await Promise.race([
    Promise.all(clients.map((c) => Promise.resolve(c.disconnect()))),
    new Promise((r) => setTimeout(r, 5000)),
  ]);
  for (const n of nodes) await n.stop();
  await redis?.kill();
}

test('two processes: a publish through either reaches every subscriber once, wildcards included', PER_TEST, async (t) => {
  if (SERVER_KIND === 'faye') return t.skip('the Redis backplane options are Bayou\'s');
  const redis = await startRedis();
  const [a, b] = [await startNode(redis), await startNode(redis)];
  const onA = client(a.url);
  const onB = client(b.url, { transport: 'long-polling' });
  const wild = client(b.url);
  const pubA = client(a.url);
  const pubB = client(b.url);
  try {
    await onA.listen('/chat/room');
    await onB.listen('/chat/room', '/chat/*', '/chat/**');
    await wild.listen('/**');
    await pubA.publish('/chat/room', 'A1');
    await pubB.publish('/chat/room/deep', 'B1');
    await pubB.publish('/chat/room', 'B2');
    await pubA.publish('/chat/room', 'end-A');
    await pubB.publish('/chat/room', 'end-B');
    await pubB.publish('/chat/room/deep', 'end-B-deep');
    // Every message once, whatever mix of channel and patterns matched it on each process.
    const all = ['A1', 'B1', 'B2', 'end-A', 'end-B', 'end-B-deep'];
    const markers = ['end-A', 'end-B', 'end-B-deep'];
    await gotExactly(onA, ['end-A', 'end-B'], ['A1', 'B2', 'end-A', 'end-B']);
    await gotExactly(onB, markers, all);
    await gotExactly(wild, markers, all);
  } finally {
    await stopAll([onA, onB, wild, pubA, pubB], [a, b], redis);
  }
});

test('three processes: every process reads the log, only those with subscribers deliver', PER_TEST, async (t) => {
  if (SERVER_KIND === 'faye') return t.skip('the Redis backplane options are Bayou\'s');
  const redis = await startRedis();
  const nodes = [await startNode(redis), await startNode(redis), await startNode(redis)];
  const [a, b, c] = nodes;
  const onA = client(a.url);
  const onB = client(b.url, { transport: 'long-polling' });
  const publishers = nodes.map((n) => client(n.url));
  try {
    await onA.listen('/users/7');
    await onB.listen('/users/*');
    for (const [i, p] of publishers.entries()) await p.publish('/users/7', `via ${i}`);
    for (const [i, p] of publishers.entries()) await p.publish('/users/7', `end ${i}`);
    for (const sub of [onA, onB]) {
      const got = await before(sub, 'end 2');
      await until(() => ['end 0', 'end 1'].every((e) => sub.got.includes(e)), 'every end marker');
      assert.deepEqual(sorted(got.filter((m) => m.startsWith('via'))), ['via 0', 'via 1', 'via 2']);
    }
    await until(async () => (await c.metrics()).bayou_backplane_received_total === 6, 'C read the whole log');
    const m = await c.metrics();
    assert.equal(m.bayou_backplane_delivered_total, 0, 'the process without subscribers handed its workers nothing');
    assert.equal(m.bayou_backplane_channels + m.bayou_backplane_patterns, 0);
    assert.equal(m.bayou_backplane_published_total, 2);
    // Each of A and B delivered all six from the log, its own included.
    for (const n of [a, b]) assert.equal((await n.metrics()).bayou_backplane_delivered_total, 6);
    const length = await redisCommand(redis.port, 'XLEN bayou:0:/faye:log');
    assert.match(length, /^:6\r\n$/, `one log entry per publish: ${length}`);
  } finally {
    await stopAll([onA, onB, ...publishers], nodes, redis);
  }
});

test('killing Redis keeps local delivery; cross-process delivery resumes when it is back', PER_TEST, async (t) => {
  if (SERVER_KIND === 'faye') return t.skip('the Redis backplane options are Bayou\'s');
  let redis = await startRedis();
  const [a, b] = [await startNode(redis), await startNode(redis)];
  const onA = client(a.url);
  const onB = client(b.url);
  const pub = client(a.url);
  try {
    await onA.listen('/news');
    await onB.listen('/news');
    await pub.publish('/news', 'before');
    await before(onB, 'before');

    await redis.kill();
    for (const n of [a, b]) await until(async () => (await n.metrics()).bayou_backplane_up === 0, 'the backplane down');
    await pub.publish('/news', 'during');
    await before(onA, 'during');

    redis = await startRedis({ port: redis.port });
    for (const n of [a, b]) await until(async () => (await n.metrics()).bayou_backplane_up === 1, 'the backplane up again');
    await pub.publish('/news', 'after');
    const got = await before(onB, 'after');
    // "during" waited in A's bounded buffer; it arrives if B resubscribed before A resent it.
    assert.ok(got.filter((m) => m === 'during').length <= 1, JSON.stringify(got));
    assert.equal(a.output().match(/redis backplane down/g)?.length, 1, 'the outage is logged once');
  } finally {
    await stopAll([onA, onB, pub], [a, b], redis);
  }
});

/** A TCP proxy standing in for a sticky load balancer: new connections go to the current target. */
function balancer() {
  let target;
  const sockets = new Set();
  const server = net.createServer((downstream) => {
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(downstream).add(upstream);
    const end = () => { downstream.destroy(); upstream.destroy(); sockets.delete(downstream); sockets.delete(upstream); };
    downstream.pipe(upstream).pipe(downstream);
    downstream.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    to(port) { target = port; },
    /** Cuts every open connection (the sticky task went away). */
    cut() { for (const s of sockets) s.destroy(); },
    close() {
      this.cut();
      return new Promise((r) => server.close(r));
    },
  })));
}

// A session belongs to the cluster. A client whose connection moves to another process (its
// sticky task went away) names its clientId there: the session moves with it, so it keeps its
// clientId and subscriptions (no handshake on B) and receives every message published
// meanwhile, on any process, once.
test('a client moved to another process keeps its session and misses nothing', PER_TEST, async (t) => {
  if (SERVER_KIND === 'faye') return t.skip('the Redis backplane options are Bayou\'s');
  const redis = await startRedis();
  const [a, b] = [await startNode(redis), await startNode(redis)];
  const lb = await balancer();
  lb.to(a.port);
  const c = client(lb.url);
  try {
    await c.listen('/moving');
    await until(() => c._dispatcher.connectionType === 'websocket', 'the WebSocket transport');
    await ingest(b.url, '/moving', 'on A, published on B');
    await until(() => c.got.length === 1, 'the first message');

    const handshakesOnB = (await b.metrics())['bayou_handshakes_total{mount="/faye"}'];
    const clientId = c._dispatcher.clientId;
    lb.to(b.port);
    lb.cut();
    // A frame A writes before it has seen its socket close goes into a connection nobody reads
    // (TCP takes it, the proxy has gone): that is a network cut, not a move. The move begins
    // once A knows: publish from then on.
    await until(async () => ((await a.metrics())['bayou_connections{transport="websocket"}'] ?? 0) === 0,
      'A to see its WebSocket closed');
    let sent = 0;
    for (; !c.got.some((m) => m.startsWith('on B')) && sent < 150; sent++) {
      await ingest(a.url, '/moving', `on B, published on A ${sent}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const want = ['on A, published on B'];
    for (let i = 0; i < sent; i++) want.push(`on B, published on A ${i}`);
    await until(() => c.got.length >= want.length, 'every message').catch((e) => {
      throw new Error(`${e.message}: got ${JSON.stringify(c.got)}, want ${JSON.stringify(want)}`);
    });
    assert.deepEqual(c.got, want, 'every message once, in order');
    assert.equal(c._dispatcher.clientId, clientId, 'the same session');
    assert.equal((await b.metrics())['bayou_handshakes_total{mount="/faye"}'], handshakesOnB, 'no handshake on B');
    // The gauge is refreshed by each worker's timer: it drops once that has ticked.
    await until(async () => ((await a.metrics())['bayou_sessions{mount="/faye"}'] ?? 0) === 0, 'the session to leave A');
  } finally {
    await stopAll([c], [a, b], redis);
    await lb.close();
  }
});
