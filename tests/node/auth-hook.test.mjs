// The authorisation hook with a real backend process (`auth-backend.mjs`: the user named by the
// session cookie or by `ext.authToken` may subscribe to its own /users/<user> only) and real Faye
// clients: the Node client with the usual outgoing extension that adds `ext.authToken`, over
// WebSocket and long-polling, and the browser client in headless Chromium carrying a session
// cookie on every transport (on the WebSocket upgrade too). Then the backend down, hung, and
// answering badly: each is a clear Faye error for the asker and costs nobody else anything.
//
// Bayou only (Node Faye has no hook): against Faye every test is reported skipped.
// No timing assertions: every wait has a generous deadline only so that a hang fails.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer, SERVER_KIND, waitUntil, withDeadline, WAIT_MS, CHROMIUM, CHROMIUM_ARGS } from './server.mjs';

const require = createRequire(import.meta.url);
const faye = require('faye');
const HERE = dirname(fileURLToPath(import.meta.url));

const PER_TEST = { timeout: 180_000 };
const SECRET = 'ingest-s3cret';

// --- The backend process ------------------------------------------------------------------------

const backends = new Set();
process.on('exit', () => { for (const b of backends) b.kill('SIGKILL'); });

/** Starts auth-backend.mjs; resolves to {url, port, mode(m), questions(), stop()}. */
async function startBackend() {
  const child = spawn(process.execPath, [join(HERE, 'auth-backend.mjs'), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  backends.add(child);
  const exited = new Promise((resolve) => child.once('exit', () => { backends.delete(child); resolve(); }));
  const port = await withDeadline(new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk;
      const m = /listening on (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    exited.then(() => reject(new Error('the backend exited before listening')));
  }), 'the auth backend to listen');
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    async mode(mode) {
      const r = await fetch(`${url}/mode`, { method: 'POST', body: JSON.stringify({ mode }) });
      assert.equal(r.status, 200);
    },
    async questions() {
      return (await fetch(`${url}/questions`)).json();
    },
    async connections() {
      return (await (await fetch(`${url}/connections`)).json()).connections;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

// --- Helpers ------------------------------------------------------------------------------------

/** POSTs a Bayeux batch to the mount and returns the replies. */
async function bayeux(server, messages, headers = {}) {
  const response = await withDeadline(fetch(`${server.url}/faye`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(messages),
  }), `POST ${messages.map((m) => m.channel)}`, 60_000);
  assert.equal(response.status, 200);
  return response.json();
}

async function handshake(server, ext, headers) {
  const [reply] = await bayeux(server, [{
    channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], ext,
  }], headers);
  return reply;
}

async function subscribe(server, clientId, subscription, ext) {
  const [reply] = await bayeux(server, [{ channel: '/meta/subscribe', clientId, subscription, ext }]);
  return reply;
}

async function ingest(server, channel, data) {
  const [reply] = await bayeux(server, [{ channel, data, ext: { password: SECRET } }]);
  assert.equal(reply.successful, true, JSON.stringify(reply));
}

/** A real faye.Client with the Faye auth recipe: `ext.authToken` on every outgoing message. */
class TokenClient {
  constructor(server, transport, token) {
    this.client = new faye.Client(`${server.url}/faye`);
    if (transport === 'long-polling') this.client.disable('websocket');
    this.received = [];
    this.listeners = new Set();
    this.client.addExtension({
      outgoing: (message, callback) => {
        message.ext = { ...message.ext, authToken: token };
        callback(message);
      },
      incoming: (message, callback) => {
        this.received.push(structuredClone(message));
        callback(message);
        // After the message has reached its subscription callback (a condition on what the
        // callback collected, checked before, would wait for the next message to look again).
        setImmediate(() => { for (const listener of [...this.listeners]) listener(); });
      },
    });
  }

  deliveries(channel) {
    return this.received.filter((m) => m.channel === channel && m.successful === undefined && 'data' in m);
  }

  waitUntil(condition, what) {
    return waitUntil(this.listeners, condition, what);
  }

  async subscribe(channel) {
    const data = [];
    await withDeadline(this.client.subscribe(channel, (d) => data.push(d)), `subscribe to ${channel}`);
    return data;
  }

  /** The error a refused subscription rejects with. */
  async refusedSubscribe(channel) {
    const error = await withDeadline(
      this.client.subscribe(channel, () => {}).then(() => null, (e) => e),
      `the refusal of ${channel}`);
    assert.ok(error, `${channel}: subscribed, expected a refusal`);
    return `${error.code}:${error.params.join(',')}:${error.message}`;
  }

  async close() {
    try {
      await withDeadline(Promise.resolve(this.client.disconnect()), 'disconnect');
    } finally {
      this.client._dispatcher.close();
    }
  }
}

/** Runs `body(server, backend, track)` with a backend and a Bayou using it as the hook. */
async function withHook(t, { args = [], toml, timeout = 2 } = {}, body) {
  if (SERVER_KIND === 'faye') {
    t.skip('Node Faye has no authorisation hook (Bayou only)');
    return;
  }
  const backend = await startBackend();
  const extra = [
    '--publish-secret', SECRET,
    '--auth-hook', `${backend.url}/auth`,
    '--auth-hook-headers', 'cookie,origin',
    ...args,
  ];
  if (toml) extra.push('--config-toml', toml);
  const server = await startServer({ timeout, extraArgs: extra });
  const clients = [];
  try {
    await body(server, backend, (c) => { clients.push(c); return c; });
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await server.stop();
    await backend.stop();
  }
  // Credentials never reach the server's log.
  assert.doesNotMatch(server.output(), /tok-[a-z0-9]|sess-[a-z0-9]/, 'a credential in the log');
}

// --- The Node client ----------------------------------------------------------------------------

for (const transport of ['websocket', 'long-polling']) {
  describe(`the hook with faye.Client and ext.authToken over ${transport}`, () => {
    test('a user subscribes to its own channel only; its token reaches no subscriber', PER_TEST, async (t) => {
      // Clients may publish under /users/ (the hook then decides whose), the backend anywhere.
      const args = ['--auth-hook-publish', 'true', '--client-publish', '/users/**'];
      await withHook(t, { args }, async (server, backend, track) => {
        const bob = track(new TokenClient(server, transport, 'tok-bob'));
        const data = await bob.subscribe('/users/bob');
        const refusal = await bob.refusedSubscribe('/users/alice');
        assert.equal(refusal, '403:/users/alice:Only /users/bob is yours');

        // Published by the backend through the ingest (never asked about), and by Bob himself
        // (asked, since client publishes are hooked here); his token is not delivered.
        await ingest(server, '/users/bob', { n: 1 });
        await withDeadline(bob.client.publish('/users/bob', { n: 2 }), 'publish by bob');
        const denied = await withDeadline(
          bob.client.publish('/users/alice', { n: 3 }).then(() => null, (e) => e), 'publish to alice');
        assert.equal(denied?.message, 'Only /users/bob is yours');
        await bob.waitUntil(() => data.length === 2, 'both messages');
        assert.deepEqual(data, [{ n: 1 }, { n: 2 }]);
        for (const m of bob.deliveries('/users/bob')) assert.equal(m.ext?.authToken, undefined, JSON.stringify(m));

        const questions = await backend.questions();
        const channels = questions.map((q) => `${q.channel} ${q.subscription ?? ''}`.trim());
        assert.deepEqual(channels.filter((c) => c.startsWith('/meta/handshake')).length, 1, channels.join('\n'));
        assert.ok(channels.includes('/meta/subscribe /users/bob'), channels.join('\n'));
        assert.ok(channels.includes('/meta/subscribe /users/alice'), channels.join('\n'));
        assert.ok(channels.includes('/users/bob') && channels.includes('/users/alice'), channels.join('\n'));
        for (const q of questions) {
          assert.equal(q.mount, '/faye');
          assert.equal(q.address, '127.0.0.1');
          assert.equal(q.contentType, 'application/json');
          assert.equal(q.ext.authToken, 'tok-bob', JSON.stringify(q));
          // Only the configured headers; the Node client sends no cookie.
          assert.deepEqual(Object.keys(q.headers).filter((h) => h !== 'origin'), [], JSON.stringify(q));
          if (q.channel !== '/meta/handshake') assert.equal(q.clientId, bob.client._dispatcher.clientId);
        }
        assert.equal(questions.filter((q) => q.channel === '/users/bob').length, 1, 'the ingest publish asked');
        // Kept alive: at most one connection per worker for these one-at-a-time questions.
        const connections = await backend.connections();
        assert.ok(connections < questions.length, `${connections} connections for ${questions.length} questions`);
        assert.ok(connections <= Number(process.env.BAYOU_TEST_WORKERS || 2), `${connections} connections`);
      });
    });
  });
}

describe('the hook with raw requests', () => {
  test('without credentials the handshake is refused with the backend\'s error', PER_TEST, async (t) => {
    await withHook(t, {}, async (server) => {
      const reply = await handshake(server, undefined);
      assert.equal(reply.successful, false);
      assert.equal(reply.error, '401::Authentication required');
      assert.equal(reply.advice.reconnect, 'handshake');
      const cookie = await handshake(server, undefined, { Cookie: 'theme=dark; session=sess-zoe' });
      assert.equal(cookie.successful, true, JSON.stringify(cookie));
      const own = await subscribe(server, cookie.clientId, '/users/zoe');
      assert.equal(own.successful, false, 'a subscribe without the cookie is a stranger\'s');
      assert.equal(own.error, '401::Authentication required');
    });
  });

  test('an allow decision is reused across a reconnect: the backend is asked once', PER_TEST, async (t) => {
    await withHook(t, {}, async (server, backend, track) => {
      const first = track(new TokenClient(server, 'websocket', 'tok-frank'));
      await first.subscribe('/users/frank');
      await first.close();
      // The same user again, a new session (a reload, or a reconnect after the session ended).
      const again = track(new TokenClient(server, 'websocket', 'tok-frank'));
      const data = await again.subscribe('/users/frank');
      await ingest(server, '/users/frank', 'still yours');
      await again.waitUntil(() => data.length === 1, 'the message after the reconnect');
      const questions = await backend.questions();
      assert.equal(questions.filter((q) => q.channel === '/meta/handshake').length, 1, JSON.stringify(questions));
      assert.equal(questions.filter((q) => q.channel === '/meta/subscribe').length, 1, JSON.stringify(questions));
      const admin = server.output().replace(/\x1b\[[0-9;]*m/g, '').match(/admin=([\d.:]+)/)?.[1];
      const metrics = await (await fetch(`http://${admin}/metrics`)).text();
      assert.match(metrics, /bayou_auth_hook_cached_total\{mount="\/faye"\} 2/);
    });
  });

  test('a backend that is down denies with a clear error, and the client keeps what it has', PER_TEST, async (t) => {
    await withHook(t, { args: ['--auth-hook-cache-ttl', '0'] }, async (server, backend, track) => {
      const gus = track(new TokenClient(server, 'websocket', 'tok-gus'));
      const data = await gus.subscribe('/users/gus');
      await backend.stop();
      const refusal = await gus.refusedSubscribe('/users/gus/alerts');
      assert.equal(refusal, '503:/users/gus/alerts:Authorisation backend unavailable (unreachable)');
      await ingest(server, '/users/gus', 'delivered while the backend is down');
      await gus.waitUntil(() => data.length === 1, 'the delivery');
      assert.match(server.output(), /authorisation hook gave no answer/);
    });
  });

  test('a hung backend times out; a subscriber on another channel keeps receiving throughout', PER_TEST, async (t) => {
    const toml = '[auth]\nhook_timeout = 8\nhook_max_in_flight = 2\nhook_cache_ttl = 0';
    // Sessions outlive the hung questions (a session without a connect ends after its timeout).
    await withHook(t, { toml, timeout: 30 }, async (server, backend, track) => {
      const healthy = track(new TokenClient(server, 'websocket', 'tok-hal'));
      const data = await healthy.subscribe('/users/hal');
      const ivy = await handshake(server, { authToken: 'tok-ivy' });
      assert.equal(ivy.successful, true);
      await backend.mode('hang');
      // More questions than request slots, on every worker: all wait, none blocks anybody.
      let settled = 0;
      const hung = Array.from({ length: 6 }, () =>
        subscribe(server, ivy.clientId, '/users/ivy', { authToken: 'tok-ivy' }).finally(() => { settled += 1; }));
      for (let i = 0; i < 20; i++) await ingest(server, '/users/hal', i);
      await healthy.waitUntil(() => data.length === 20, 'all 20 while the backend hangs');
      assert.deepEqual(data, Array.from({ length: 20 }, (_, i) => i));
      assert.equal(settled, 0, 'a hung question was answered before its timeout');
      for (const reply of await Promise.all(hung)) {
        assert.equal(reply.successful, false);
        assert.equal(reply.error, '503:/users/ivy:Authorisation backend unavailable (timeout)');
      }
      // The slots came back: once the backend answers again, so does the hook.
      await backend.mode('rule');
      const ok = await subscribe(server, ivy.clientId, '/users/ivy', { authToken: 'tok-ivy' });
      assert.equal(ok.successful, true, JSON.stringify(ok));
    });
  });

  test('bad answers (not JSON, huge, a trickle, a 500) are failures that harm nothing', PER_TEST, async (t) => {
    const toml = '[auth]\nhook_timeout = 1.5\nhook_cache_ttl = 0';
    await withHook(t, { toml }, async (server, backend, track) => {
      const healthy = track(new TokenClient(server, 'long-polling', 'tok-jo'));
      const data = await healthy.subscribe('/users/jo');
      const kim = await handshake(server, { authToken: 'tok-kim' });
      const expected = { garbage: 'bad_answer', huge: 'too_large', trickle: 'timeout', status500: 'status' };
      for (const [mode, reason] of Object.entries(expected)) {
        await backend.mode(mode);
        const reply = await subscribe(server, kim.clientId, '/users/kim', { authToken: 'tok-kim' });
        assert.equal(reply.successful, false, `${mode}: ${JSON.stringify(reply)}`);
        assert.equal(reply.error, `503:/users/kim:Authorisation backend unavailable (${reason})`, mode);
        await ingest(server, '/users/jo', mode);
      }
      await healthy.waitUntil(() => data.length === 4, 'every delivery between the bad answers');
      assert.deepEqual(data, Object.keys(expected));
      await backend.mode('rule');
      const ok = await subscribe(server, kim.clientId, '/users/kim', { authToken: 'tok-kim' });
      assert.equal(ok.successful, true, JSON.stringify(ok));
    });
  });

  test('the local checks run first: a protected channel needs its token and then the backend', PER_TEST, async (t) => {
    const key = 'token-k3y';
    const args = ['--token-secret', key, '--protect', '/users/*', '--allowed-origin', 'https://app.example'];
    await withHook(t, { args }, async (server, backend) => {
      const lee = await handshake(server, { authToken: 'tok-lee' });
      assert.equal(lee.successful, true, JSON.stringify(lee));
      const asked = async () => (await backend.questions()).filter((q) => q.channel === '/meta/subscribe').length;
      // No subscribe token: refused by `protect`, and the backend is not asked.
      const untokened = await subscribe(server, lee.clientId, '/users/lee', { authToken: 'tok-lee' });
      assert.equal(untokened.successful, false);
      assert.match(untokened.error, /^403:\/users\/lee:/);
      assert.equal(await asked(), 0);
      // A valid token for someone else's channel: the token passes, the backend refuses.
      const jwt = mintJwt(['/users/*'], key);
      const other = await subscribe(server, lee.clientId, '/users/max', { authToken: 'tok-lee', token: jwt });
      assert.equal(other.error, '403:/users/max:Only /users/lee is yours');
      // Both agree.
      const own = await subscribe(server, lee.clientId, '/users/lee', { authToken: 'tok-lee', token: jwt });
      assert.equal(own.successful, true, JSON.stringify(own));
      assert.equal(await asked(), 2);
      // An origin the allow-list refuses never reaches the hook.
      const before = (await backend.questions()).length;
      const cors = await fetch(`${server.url}/faye`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Origin: 'https://evil.example' },
        body: JSON.stringify([{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'] }]),
      });
      assert.equal(cors.status, 403);
      assert.equal((await backend.questions()).length, before);
    });
  });

  test('hook_failure = "allow" lets messages through while the backend is down', PER_TEST, async (t) => {
    await withHook(t, { args: ['--auth-hook-failure', 'allow'] }, async (server, backend) => {
      await backend.stop();
      const reply = await handshake(server, undefined);
      assert.equal(reply.successful, true, JSON.stringify(reply));
    });
  });
});

/** An HS256 subscribe token naming `channels`. */
function mintJwt(channels, key) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ channels, exp: Math.floor(Date.now() / 1000) + 600 })}`;
  return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
}

// --- The browser client -------------------------------------------------------------------------

const MOUNT = '/faye';

/** A same- or cross-origin page whose Faye client subscribes to `mine` and `theirs`. */
function pageHtml(serverUrl, disable, mine, theirs) {
  const config = JSON.stringify({ endpoint: serverUrl + MOUNT, disable, mine, theirs });
  return `<!doctype html>
<html><head><meta charset="utf-8"><script src="${serverUrl}${MOUNT}/client.js"></script></head>
<body><script>
  const config = ${config};
  window.received = [];
  const client = new Faye.Client(config.endpoint);
  for (const feature of config.disable) client.disable(feature);
  window.fayeClient = client;
  client.subscribe(config.mine, (data) => window.received.push(data)).then(
    () => { window.ready = true; }, (e) => { window.failed = String(e && e.message); });
  client.subscribe(config.theirs, () => {}).then(
    () => { window.refusal = 'subscribed'; },
    (e) => { window.refusal = e.code + ':' + e.params.join(',') + ':' + e.message; });
</script></body></html>`;
}

const BROWSER_CASES = [
  { origin: 'same', disable: [], expected: 'websocket' },
  { origin: 'same', disable: ['websocket'], expected: 'eventsource' },
  { origin: 'same', disable: ['websocket', 'eventsource'], expected: 'long-polling' },
  { origin: 'cross', disable: ['websocket'], expected: 'cross-origin-long-polling' },
  { origin: 'cross', disable: ['websocket', 'cross-origin-long-polling'], expected: 'callback-polling' },
];

describe('the hook with the browser client and a session cookie', () => {
  test('every transport carries the cookie to the hook: own channel allowed, another denied', PER_TEST, async (t) => {
    await withHook(t, {}, async (server, backend) => {
      const pages = await startPageServer();
      const userDataDir = mkdtempSync(join(tmpdir(), 'bayou-chromium-'));
      const context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
      });
      try {
        for (const [i, c] of BROWSER_CASES.entries()) {
          const user = `web${i}`;
          // The session cookie the product's login set (cookies are per host, not per port).
          await context.clearCookies();
          await context.addCookies([{ name: 'session', value: `sess-${user}`, domain: '127.0.0.1', path: '/' }]);
          const html = pageHtml(server.url, c.disable, `/users/${user}`, '/users/someone');
          const page = await context.newPage();
          let pageUrl;
          if (c.origin === 'same') {
            pageUrl = `${server.url}/app.html`;
            await page.route(pageUrl, (route) => route.fulfill({ contentType: 'text/html', body: html }));
          } else {
            pageUrl = pages.serve(html);
          }
          await page.goto(pageUrl);
          await page.waitForFunction(() => (window.ready || window.failed) && window.refusal, null, { timeout: WAIT_MS });
          assert.equal(await page.evaluate(() => window.failed), undefined, `${c.expected}: own channel refused`);
          assert.equal(await page.evaluate(() => window.refusal),
            `403:/users/someone:Only /users/${user} is yours`, c.expected);
          await page.waitForFunction((type) => window.fayeClient._dispatcher.connectionType === type,
            c.expected, { timeout: WAIT_MS });
          await ingest(server, `/users/${user}`, { to: user });
          await page.waitForFunction(() => window.received.length > 0, null, { timeout: WAIT_MS });
          assert.deepEqual(await page.evaluate(() => window.received), [{ to: user }]);
          const asked = (await backend.questions()).filter((q) => q.headers.cookie === `session=sess-${user}`);
          const kinds = asked.map((q) => `${q.channel} ${q.subscription ?? ''}`.trim()).sort();
          assert.deepEqual(kinds, ['/meta/handshake', '/meta/subscribe /users/someone', `/meta/subscribe /users/${user}`],
            `${c.expected}: what the backend was asked with the cookie`);
          await page.close();
        }
      } finally {
        await context.close();
        rmSync(userDataDir, { recursive: true, force: true });
        await pages.stop();
      }
    });
  });
});

/** A second origin serving whatever page it was last given. */
async function startPageServer() {
  const http = await import('node:http');
  let html = '';
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    serve(page) {
      html = page;
      return `http://127.0.0.1:${server.address().port}/app.html`;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
