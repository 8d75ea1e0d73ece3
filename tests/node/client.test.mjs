// End-to-end tests with the real Node `faye.Client` (faye 1.4.3), spec §10 row M.
//
// Every case runs twice: over WebSocket (the Node client's preferred transport) and with
// `client.disable('websocket')` (HTTP long-polling). The transport a message actually arrived on
// is recorded by wrapping the client's `Transport#_receive`, so a silent fallback from WebSocket
// to long-polling fails the test instead of passing unnoticed.
//
// No timing assertions: every wait has a generous deadline only so that a hang fails.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startServer, waitUntil, withDeadline } from './server.mjs';

const require = createRequire(import.meta.url);
const faye = require('faye');
const Transport = require('faye/src/transport/transport.js');

/** Per test, so that one hang fails that test only. */
const PER_TEST = { timeout: 120_000 };

// --- Recording what each client receives, and on which transport --------------------------------

const recorders = new WeakMap();
const originalReceive = Transport.prototype._receive;
Transport.prototype._receive = function receiveAndRecord(replies) {
  const recorder = recorders.get(this._dispatcher._client);
  if (recorder && replies) {
    for (const message of [].concat(replies)) recorder.onWire(this.connectionType, message);
  }
  return originalReceive.call(this, replies);
};


const isDelivery = (message) => message.successful === undefined && 'data' in message;

/** A real faye.Client plus a log of everything it sent and received. */
class TestClient {
  constructor(endpoint, { transport, retry }) {
    this.client = new faye.Client(endpoint, retry ? { retry } : {});
    if (transport === 'long-polling') this.client.disable('websocket');
    this.transport = transport;
    this.wire = [];
    this.outgoing = [];
    this.listeners = new Set();
    recorders.set(this.client, this);
    this.client.addExtension({
      outgoing: (message, callback) => {
        this.outgoing.push(message);
        callback(message);
        this.changed();
      },
    });
  }

  onWire(connectionType, message) {
    this.wire.push({ via: connectionType, message });
    this.changed();
  }

  changed() {
    for (const listener of [...this.listeners]) listener();
  }

  /** Resolves once `condition()` holds, re-checked after every message this client receives. */
  waitUntil(condition, what) {
    return waitUntil(this.listeners, condition, what);
  }

  /** Subscribes and resolves once the server acknowledged; `received` collects the data. */
  async subscribe(channel) {
    const received = [];
    const subscription = this.client.subscribe(channel, (data) => {
      received.push(data);
      this.changed();
    });
    await withDeadline(subscription, `subscribe to ${channel}`);
    await this.onTransport();
    return { received, subscription };
  }

  /**
   * Resolves once the client has sent a /meta/connect on the transport under test. The handshake
   * always goes over HTTP and the WebSocket is selected only afterwards, so until then a message
   * could legitimately arrive on a connect still held over long-polling.
   */
  onTransport() {
    return this.waitUntil(() => this.outgoing.some((message) =>
      message.channel === '/meta/connect' && message.connectionType === this.transport),
    `a /meta/connect over ${this.transport}`);
  }

  publish(channel, data) {
    return withDeadline(this.client.publish(channel, data), `publish to ${channel}`);
  }

  /** Cancels a subscription and resolves once the server acknowledged the unsubscribe. */
  async unsubscribe(channel, subscription) {
    const mark = this.wire.length;
    subscription.cancel();
    await this.waitUntil(() => this.wire.slice(mark).some(({ message }) =>
      message.channel === '/meta/unsubscribe' && message.subscription === channel && message.successful),
    `unsubscribe from ${channel} acknowledged`);
  }

  /** The raw deliveries on `channel` (one per message the server pushed to this client). */
  deliveries(channel) {
    return this.wire.filter(({ message }) => message.channel === channel && isDelivery(message));
  }

  /** Fails unless every delivery so far came over the transport under test, and no other. */
  assertTransport() {
    const deliveries = this.wire.filter(({ message }) => isDelivery(message));
    assert.ok(deliveries.length > 0, 'no deliveries recorded');
    for (const { via, message } of deliveries) {
      assert.equal(via, this.transport, `delivery on ${message.channel} arrived over ${via}`);
    }
    assert.equal(this.client._dispatcher.connectionType, this.transport);
    const connects = this.outgoing.filter((m) => m.channel === '/meta/connect');
    assert.ok(connects.length > 0, 'no /meta/connect sent');
    assert.equal(connects.at(-1).connectionType, this.transport);
    if (this.transport === 'long-polling') {
      assert.equal(this.client._dispatcher.transports.websocket, undefined, 'a WebSocket was opened');
    }
  }

  async close() {
    try {
      await withDeadline(Promise.resolve(this.client.disconnect()), 'disconnect');
    } catch {
      // The server may already be gone (restart tests); the client is closed either way.
    }
    this.client._dispatcher.close();
  }
}

/** Publishes through the HTTP ingest: a bare POST of {channel, data}, no handshake. */
async function ingest(server, mount, channel, data) {
  const response = await withDeadline(fetch(server.url + mount, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  }), `ingest POST to ${channel}`);
  assert.equal(response.status, 200);
  const replies = await response.json();
  assert.ok(Array.isArray(replies), `ingest reply is not an array: ${JSON.stringify(replies)}`);
  assert.equal(replies.length, 1);
  assert.equal(replies[0].channel, channel);
  assert.equal(replies[0].successful, true, `ingest publish failed: ${JSON.stringify(replies)}`);
}

/** Runs `body` with a fresh server and client factory; stops both whatever happens. */
async function withServer(options, body) {
  const server = await startServer(options);
  const clients = [];
  const context = {
    server,
    client(mount = '/faye', clientOptions = {}) {
      const client = new TestClient(server.url + mount, { transport: context.transport, ...clientOptions });
      clients.push(client);
      return client;
    },
    transport: options.transport,
  };
  try {
    await body(context);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await server.stop();
    for (const stopAlso of context.alsoStop ?? []) await stopAlso();
  }
}

// --- The cases, once per transport ----------------------------------------------------------------

for (const transport of ['websocket', 'long-polling']) {
  const run = (options, body) => withServer({ ...options, transport }, body);

  describe(`Node faye.Client over ${transport}`, () => {
    test('subscribes, publishes through the client and receives', PER_TEST, () => run({}, async (ctx) => {
      const subscriber = ctx.client();
      const publisher = ctx.client();
      const { received } = await subscriber.subscribe('/chat/room');

      await publisher.publish('/chat/room', { text: 'from another client' });
      await subscriber.publish('/chat/room', { text: 'from the subscriber itself' });
      await subscriber.waitUntil(() => received.length === 2, 'two messages on /chat/room');

      assert.deepEqual(received, [{ text: 'from another client' }, { text: 'from the subscriber itself' }]);
      subscriber.assertTransport();
    }));

    test('receives messages published through the HTTP ingest', PER_TEST, () => run({}, async (ctx) => {
      const subscriber = ctx.client();
      const { received } = await subscriber.subscribe('/ingest/news');

      await ingest(ctx.server, '/faye', '/ingest/news', { headline: 'hello' });
      await ingest(ctx.server, '/faye', '/ingest/news', 'plain string');
      await subscriber.waitUntil(() => received.length === 2, 'two ingested messages');

      assert.deepEqual(received, [{ headline: 'hello' }, 'plain string']);
      subscriber.assertTransport();
    }));

    test('gets no more deliveries after unsubscribing', PER_TEST, () => run({}, async (ctx) => {
      const leaver = ctx.client();
      const stayer = ctx.client();
      const left = await leaver.subscribe('/unsub/topic');
      const marker = await leaver.subscribe('/unsub/marker');
      const stayed = await stayer.subscribe('/unsub/topic');

      await ingest(ctx.server, '/faye', '/unsub/topic', 'before');
      await leaver.waitUntil(() => left.received.length === 1, 'the message before unsubscribing');

      await leaver.unsubscribe('/unsub/topic', left.subscription);
      await ingest(ctx.server, '/faye', '/unsub/topic', 'after');
      await ingest(ctx.server, '/faye', '/unsub/marker', 'marker');
      await stayer.waitUntil(() => stayed.received.length === 2, 'the other subscriber gets both');
      await leaver.waitUntil(() => marker.received.length === 1, 'the marker after unsubscribing');

      assert.deepEqual(stayed.received, ['before', 'after']);
      assert.deepEqual(left.received, ['before']);
      assert.equal(leaver.deliveries('/unsub/topic').length, 1, 'the server kept delivering');
      leaver.assertTransport();
    }));

    test('wildcards /a/* and /a/** get one delivery per message', PER_TEST, () => run({}, async (ctx) => {
      const client = ctx.client();
      const star = await client.subscribe('/wild/*');
      const globstar = await client.subscribe('/wild/**');
      const exact = await client.subscribe('/wild/b');

      await ingest(ctx.server, '/faye', '/wild/b/c', 'deep');
      await ingest(ctx.server, '/faye', '/wild/b', 'b');
      await ingest(ctx.server, '/faye', '/wild/x', 'x');
      await ingest(ctx.server, '/faye', '/other/b', 'elsewhere');
      await client.waitUntil(() => globstar.received.length === 3, 'three messages on /wild/**');
      await client.waitUntil(() => star.received.length === 2, 'two messages on /wild/*');

      assert.deepEqual([...globstar.received].sort(), ['b', 'deep', 'x']);
      assert.deepEqual([...star.received].sort(), ['b', 'x']);
      assert.deepEqual(exact.received, ['b']);
      for (const channel of ['/wild/b', '/wild/x', '/wild/b/c']) {
        assert.equal(client.deliveries(channel).length, 1, `deliveries on ${channel}`);
      }
      assert.equal(client.deliveries('/other/b').length, 0);
      client.assertTransport();
    }));

    test('many messages arrive complete and in order', PER_TEST, () => run({}, async (ctx) => {
      const COUNT = 100;
      const subscriber = ctx.client();
      const publisher = ctx.client();
      const { received } = await subscriber.subscribe('/order/seq');
      const expected = Array.from({ length: COUNT }, (_, i) => ({ n: i }));

      for (let i = 0; i < COUNT; i++) await ingest(ctx.server, '/faye', '/order/seq', { n: i });
      await subscriber.waitUntil(() => received.length >= COUNT, `${COUNT} ingested messages`);
      assert.deepEqual(received, expected);

      // Before it is connected the client itself reorders queued publishes (the first one goes
      // last), so connect the publisher first. Over WebSocket every publish is then its own frame
      // on one socket and a burst keeps its order; long-polling batches may go out on parallel
      // HTTP requests, so there publish one at a time.
      await publisher.publish('/order/warm-up', 'connect first');
      if (transport === 'websocket') {
        await Promise.all(expected.map((data) => publisher.publish('/order/seq', { n: COUNT + data.n })));
      } else {
        for (const data of expected) await publisher.publish('/order/seq', { n: COUNT + data.n });
      }
      await subscriber.waitUntil(() => received.length >= 2 * COUNT, `${COUNT} client-published messages`);
      assert.deepEqual(received.slice(COUNT), expected.map(({ n }) => ({ n: COUNT + n })));
      assert.equal(subscriber.deliveries('/order/seq').length, 2 * COUNT);
      subscriber.assertTransport();
    }));

    test('a client the server forgot rehandshakes, resubscribes and keeps receiving', PER_TEST, () =>
      run({}, async (ctx) => {
        const client = ctx.client('/faye', { retry: 1 });
        const { received } = await client.subscribe('/restart/topic');
        await ingest(ctx.server, '/faye', '/restart/topic', 'first life');
        await client.waitUntil(() => received.length === 1, 'the message before the restart');
        const oldClientId = client.client._dispatcher.clientId;

        await ctx.server.stop();
        const mark = client.wire.length;
        const sentMark = client.outgoing.length;
        const fresh = await startServer({ listen: ctx.server.port });
        ctx.alsoStop = [fresh.stop];

        const since = () => client.wire.slice(mark).map(({ message }) => message);
        await client.waitUntil(() => since().some((m) =>
          m.channel === '/meta/subscribe' && m.successful && m.subscription === '/restart/topic'),
        'resubscription on the fresh server');
        const handshake = since().find((m) => m.channel === '/meta/handshake' && m.successful);
        assert.ok(handshake, 'no second handshake');
        assert.notEqual(handshake.clientId, oldClientId);
        // The rehandshake goes over HTTP and the client moves back to WebSocket only afterwards;
        // until its first connect there, deliveries may still come on a held long-poll.
        await client.waitUntil(() => client.outgoing.slice(sentMark).some((m) =>
          m.channel === '/meta/connect' && m.connectionType === transport),
        `a /meta/connect over ${transport} after the restart`);

        await ingest(fresh, '/faye', '/restart/topic', 'second life');
        await client.waitUntil(() => received.length === 2, 'the message after the restart');
        assert.deepEqual(received, ['first life', 'second life']);
        // A connect sent over the new transport may still be on its way to the session (with
        // several workers it crosses to the session's worker first), so the message right
        // after the switch may ride the last held long-poll. Deliveries must then come back to
        // the transport under test: probe (bounded) until one does.
        for (let i = 0; i < 20 && client.deliveries('/restart/topic').at(-1).via !== transport; i++) {
          await ingest(fresh, '/faye', '/restart/topic', `probe ${i}`);
          await client.waitUntil(() => received.length === 3 + i, `probe ${i} after the restart`);
        }
        const lastDelivery = client.deliveries('/restart/topic').at(-1);
        assert.equal(lastDelivery.via, transport, 'deliveries after the restart come over the transport');
        // Close while the fresh server is still up; withServer stops it afterwards.
        await client.close();
      }));

    test('two mounts are isolated from each other', PER_TEST, () =>
      run({ mounts: ['/staging/faye', '/production/faye'] }, async (ctx) => {
        const staging = ctx.client('/staging/faye');
        const production = ctx.client('/production/faye');
        const onStaging = await staging.subscribe('/deploys');
        const onProduction = await production.subscribe('/deploys');

        await ingest(ctx.server, '/staging/faye', '/deploys', 'staging 1');
        await ingest(ctx.server, '/production/faye', '/deploys', 'production 1');
        await staging.publish('/deploys', 'staging 2');
        await production.publish('/deploys', 'production 2');
        await staging.waitUntil(() => onStaging.received.length >= 2, 'two staging messages');
        await production.waitUntil(() => onProduction.received.length >= 2, 'two production messages');

        assert.deepEqual(onStaging.received, ['staging 1', 'staging 2']);
        assert.deepEqual(onProduction.received, ['production 1', 'production 2']);
        assert.notEqual(staging.client._dispatcher.clientId, production.client._dispatcher.clientId);
        staging.assertTransport();
        production.assertTransport();
      }));
  });
}
