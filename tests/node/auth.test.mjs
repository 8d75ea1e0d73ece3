// Authentication with the real Node `faye.Client` (faye 1.4.3): a client extension that adds
// `ext.token` to /meta/subscribe reaches a protected channel; a client without it sees the
// subscription fail; messages published through the HTTP ingest with the secret arrive without
// any credentials. Each case runs over WebSocket and over long-polling.
//
// Bayou only (Node Faye has no secrets or tokens): against Faye every test is reported skipped.
// No timing assertions: every wait has a generous deadline only so that a hang fails.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { startServer, SERVER_KIND, waitUntil, withDeadline } from './server.mjs';

const require = createRequire(import.meta.url);
const faye = require('faye');

const PER_TEST = { timeout: 120_000 };
const SECRET = 'ingest-s3cret';
const TOKEN_KEY = 'token-k3y';
const SERVER_ARGS = ['--drain-secs', '1', '--publish-secret', SECRET, '--token-secret', TOKEN_KEY, '--protect', '/users/*'];


const base64url = (value) => Buffer.from(value).toString('base64url');

/** An HS256 JWT naming `channels`, as the product backend would sign it. */
function mintToken(channels, key = TOKEN_KEY, expiresIn = 600) {
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = base64url(JSON.stringify({ channels, exp: Math.floor(Date.now() / 1000) + expiresIn }));
  const signature = createHmac('sha256', key).update(`${header}.${claims}`).digest('base64url');
  return `${header}.${claims}.${signature}`;
}

/** POSTs one message to the ingest and returns the server's reply to it. */
async function ingest(server, message, headers = {}) {
  const response = await withDeadline(fetch(`${server.url}/faye`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(message),
  }), `ingest POST to ${message.channel}`);
  assert.equal(response.status, 200);
  const replies = await response.json();
  assert.equal(replies.length, 1, JSON.stringify(replies));
  return replies[0];
}

/** A real faye.Client that records every message it receives, whole, as the server sent it. */
class TestClient {
  constructor(server, transport, token) {
    this.client = new faye.Client(`${server.url}/faye`);
    if (transport === 'long-polling') this.client.disable('websocket');
    this.received = [];
    this.listeners = new Set();
    this.client.addExtension({
      outgoing: (message, callback) => {
        if (token && message.channel === '/meta/subscribe') {
          message.ext = { ...message.ext, token };
        }
        callback(message);
      },
      incoming: (message, callback) => {
        this.received.push(structuredClone(message));
        for (const listener of [...this.listeners]) listener();
        callback(message);
      },
    });
  }

  /** Raw deliveries on `channel`. */
  deliveries(channel) {
    return this.received.filter((m) => m.channel === channel && m.successful === undefined && 'data' in m);
  }

  waitUntil(condition, what) {
    return waitUntil(this.listeners, condition, what);
  }

  /** Subscribes; resolves with the data list once the server accepted, rejects if it refused. */
  async subscribe(channel) {
    const data = [];
    await withDeadline(this.client.subscribe(channel, (d) => data.push(d)), `subscribe to ${channel}`);
    return data;
  }

  async close() {
    try {
      await withDeadline(Promise.resolve(this.client.disconnect()), 'disconnect');
    } finally {
      this.client._dispatcher.close();
    }
  }
}

async function withServer(body) {
  const server = await startServer({ timeout: 2, extraArgs: SERVER_ARGS });
  const clients = [];
  try {
    await body(server, (transport, token) => {
      const client = new TestClient(server, transport, token);
      clients.push(client);
      return client;
    });
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await server.stop();
  }
}

/** Asserts a delivered message carries no credentials and no publisher advice. */
function assertClean(message) {
  assert.equal(message.clientId, undefined, JSON.stringify(message));
  assert.equal(message.advice, undefined, JSON.stringify(message));
  assert.equal(message.ext?.password, undefined, JSON.stringify(message));
  assert.equal(message.ext?.token, undefined, JSON.stringify(message));
}

for (const transport of ['websocket', 'long-polling']) {
  describe(`faye.Client auth over ${transport}`, () => {
    test('an ext.token extension subscribes to a protected channel and receives ingest with the secret',
      PER_TEST, async (t) => {
        if (SERVER_KIND === 'faye') {
          t.skip('Node Faye has no subscribe tokens or publish secret (Bayou only)');
          return;
        }
        await withServer(async (server, makeClient) => {
          const client = makeClient(transport, mintToken(['/users/42']));
          const data = await client.subscribe('/users/42');

          const refused = await ingest(server, { channel: '/users/42', data: 'no secret' });
          assert.equal(refused.successful, false);
          assert.equal(refused.error,
            '403::Publishing needs the ingest secret (ext.password or Authorization: Bearer)');
          const accepted = await ingest(server, {
            channel: '/users/42',
            data: { text: 'hello 42' },
            ext: { password: SECRET, trace: 't-1' },
            advice: { reconnect: 'none' },
          });
          assert.equal(accepted.successful, true, JSON.stringify(accepted));
          const bearer = await ingest(server, { channel: '/users/42', data: 'by bearer' },
            { Authorization: `Bearer ${SECRET}` });
          assert.equal(bearer.successful, true, JSON.stringify(bearer));

          await client.waitUntil(() => data.length === 2, 'two messages on /users/42');
          assert.deepEqual(data, [{ text: 'hello 42' }, 'by bearer']);
          const delivered = client.deliveries('/users/42');
          assert.equal(delivered.length, 2);
          delivered.forEach(assertClean);
          assert.deepEqual(delivered[0].ext, { trace: 't-1' });
          assert.equal('ext' in delivered[1], false);
        });
      });

    test('without a token the subscription fails, and what it receives carries no credentials',
      PER_TEST, async (t) => {
        if (SERVER_KIND === 'faye') {
          t.skip('Node Faye has no subscribe tokens or publish secret (Bayou only)');
          return;
        }
        await withServer(async (server, makeClient) => {
          const anonymous = makeClient(transport);
          const wrongToken = makeClient(transport, mintToken(['/users/43']));
          const owner = makeClient(transport, mintToken(['/users/42']));
          const ownerData = await owner.subscribe('/users/42');

          await assert.rejects(anonymous.subscribe('/users/42'), (error) => {
            assert.equal(error.code, 403);
            assert.deepEqual(error.params, ['/users/42']);
            assert.equal(error.message, 'Subscription needs a token');
            return true;
          });
          await assert.rejects(wrongToken.subscribe('/users/42'), (error) => {
            assert.equal(error.message, 'Token does not cover this channel');
            return true;
          });
          await assert.rejects(anonymous.subscribe('/users/**'), (error) => {
            assert.equal(error.message, 'Subscription needs a token');
            return true;
          });
          const news = await anonymous.subscribe('/news');

          for (const channel of ['/users/42', '/news']) {
            const reply = await ingest(server, {
              channel,
              data: `on ${channel}`,
              ext: { password: SECRET, token: mintToken(['/users/42']) },
              advice: { reconnect: 'handshake' },
            });
            assert.equal(reply.successful, true, JSON.stringify(reply));
          }
          await anonymous.waitUntil(() => news.length === 1, 'the message on /news');
          await owner.waitUntil(() => ownerData.length === 1, 'the message on /users/42');

          assert.deepEqual(news, ['on /news']);
          assert.deepEqual(ownerData, ['on /users/42']);
          const got = anonymous.deliveries('/news');
          assert.equal(got.length, 1);
          got.forEach(assertClean);
          assert.equal('ext' in got[0], false, 'ext held only credentials');
          // The refused subscription delivered nothing, though /users/42 was published to first.
          assert.equal(anonymous.deliveries('/users/42').length, 0);
          assert.equal(wrongToken.deliveries('/users/42').length, 0);
          owner.deliveries('/users/42').forEach(assertClean);
        });
      });
  });
}
