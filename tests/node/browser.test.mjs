// End-to-end tests with the real browser client (`<server>/faye/client.js`) in headless Chromium,
// spec §9.1 and §10 rows M4-M7.
//
// Each case loads a page that creates `new Faye.Client(endpoint)`, disables some transports,
// subscribes and signals readiness; the test then publishes through the HTTP ingest (a POST from
// Node) and waits for the page to report the message. The page comes either from a second origin
// (a tiny Node HTTP server on another port) or from the server's own origin (fulfilled by
// Playwright's page.route). Every request, WebSocket frame and EventSource event is recorded, and
// each case asserts the transport that actually carried the traffic and the delivery.
//
// No timing assertions: every wait has a generous deadline only so that a hang fails.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';
import { startServer, CHROMIUM, CHROMIUM_ARGS } from './server.mjs';

const WAIT_MS = 30_000;
/** Per test, so that one hang fails that test only. */
const PER_TEST = { timeout: 120_000 };
const MOUNT = '/faye';
const CHANNEL = '/browser/news';

// --- The page under test --------------------------------------------------------------------------

/** Records what the page's EventSource streams deliver; Playwright cannot read stream bodies. */
const RECORD_EVENT_SOURCE = `
  window.__sse = [];
  const NativeEventSource = window.EventSource;
  window.EventSource = function (url, init) {
    const source = new NativeEventSource(url, init);
    source.addEventListener('message', (event) => window.__sse.push(event.data));
    return source;
  };
  Object.assign(window.EventSource, { CONNECTING: 0, OPEN: 1, CLOSED: 2 });
  window.EventSource.prototype = NativeEventSource.prototype;
`;

function pageHtml(serverUrl, disable) {
  const config = JSON.stringify({ endpoint: serverUrl + MOUNT, channel: CHANNEL, disable });
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>bayou browser test</title>
<script src="${serverUrl}${MOUNT}/client.js"></script>
</head><body><script>
  const config = ${config};
  window.received = [];
  const client = new Faye.Client(config.endpoint);
  for (const feature of config.disable) client.disable(feature);
  window.fayeClient = client;
  client.subscribe(config.channel, (data) => window.received.push(data)).then(
    () => { window.ready = true; },
    (error) => { window.failed = String((error && error.message) || error); });
</script></body></html>`;
}

/** A second origin: a tiny HTTP server that serves the page for any path. */
async function startPageServer(html) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/app.html`,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// --- Recording the traffic ------------------------------------------------------------------------

/** Bayeux messages carried by a request: JSON body, form `message=` body, or JSON-P query. */
function bayeuxMessages(method, url, postData, contentType) {
  let text = null;
  if (method === 'GET') text = new URL(url).searchParams.get('message');
  else if (method === 'POST' && postData !== null) {
    text = /^application\/json/.test(contentType || '') ? postData : new URLSearchParams(postData).get('message');
  }
  if (text === null) return [];
  try { return [].concat(JSON.parse(text)); } catch { return []; }
}

class Traffic {
  constructor(page, serverUrl) {
    this.http = [];
    this.sockets = [];
    this.listeners = new Set();
    this.pending = [];
    const endpoint = serverUrl + MOUNT;
    page.on('request', (request) => {
      const url = request.url();
      if (!url.startsWith(endpoint) || /\.js(\?|$)/.test(url)) return;
      const headers = request.headers();
      const entry = {
        method: request.method(),
        url,
        type: request.resourceType(),
        accept: headers.accept || '',
        contentType: headers['content-type'] || '',
        messages: bayeuxMessages(request.method(), url, request.postData(), headers['content-type']),
        response: null,
      };
      this.http.push(entry);
      this.changed();
    });
    page.on('requestfinished', (request) => {
      const entry = this.http.findLast((e) => e.url === request.url() && e.method === request.method());
      if (!entry || entry.type === 'eventsource') return;
      this.pending.push(request.response()
        .then((response) => response && response.text())
        .then((text) => { entry.response = text; this.changed(); }, () => {}));
    });
    page.on('websocket', (socket) => {
      const entry = { url: socket.url(), sent: [], received: [] };
      this.sockets.push(entry);
      socket.on('framesent', (frame) => { entry.sent.push(String(frame.payload)); this.changed(); });
      socket.on('framereceived', (frame) => { entry.received.push(String(frame.payload)); this.changed(); });
      this.changed();
    });
  }

  /**
   * Records CORS preflights, which Playwright's request events leave out, from the DevTools
   * protocol: {url, status} per OPTIONS request to the endpoint.
   */
  async recordPreflights(context, page, serverUrl) {
    this.preflights = [];
    const endpoint = serverUrl + MOUNT;
    const byId = new Map();
    const cdp = await context.newCDPSession(page);
    cdp.on('Network.requestWillBeSent', ({ requestId, request }) => {
      if (request.method !== 'OPTIONS' || !request.url.startsWith(endpoint)) return;
      const entry = { url: request.url, status: null };
      byId.set(requestId, entry);
      this.preflights.push(entry);
      this.changed();
    });
    cdp.on('Network.responseReceived', ({ requestId, response }) => {
      const entry = byId.get(requestId);
      if (!entry) return;
      entry.status = response.status;
      this.changed();
    });
    await cdp.send('Network.enable');
  }

  changed() {
    for (const listener of [...this.listeners]) listener();
  }

  waitUntil(condition, what) {
    let check;
    let timer;
    return new Promise((resolve, reject) => {
      check = () => { if (condition()) resolve(); };
      timer = setTimeout(() => reject(new Error(`timed out after ${WAIT_MS} ms: ${what}\n${this.summary()}`)), WAIT_MS);
      this.listeners.add(check);
      check();
    }).finally(() => { clearTimeout(timer); this.listeners.delete(check); });
  }

  /** The outgoing Bayeux messages of every HTTP request, with the request they rode on. */
  sent() {
    return this.http.flatMap((request) => request.messages.map((message) => ({ request, message })));
  }

  connectedOver(connectionType) {
    if (connectionType === 'websocket') {
      return this.sockets.some((s) => s.sent.some((frame) => frame.includes('"/meta/connect"')));
    }
    return this.connects().some(({ message }) => message.connectionType === connectionType);
  }

  connects() {
    return this.sent().filter(({ message }) => message.channel === '/meta/connect');
  }

  summary() {
    const http = this.http.map((e) => `  ${e.method} ${e.url.slice(0, 120)} [${e.type}]`);
    const sockets = this.sockets.map((s) => `  WS ${s.url} sent ${s.sent.length} received ${s.received.length}`);
    const preflights = (this.preflights ?? []).map((p) => `  OPTIONS ${p.url} -> ${p.status}`);
    return ['traffic:', ...preflights, ...http, ...sockets].join('\n');
  }
}

// --- What each transport must look like on the wire -----------------------------------------------

const isJsonp = (request) => request.method === 'GET' && new URL(request.url).searchParams.has('jsonp');
const isCorsPost = (request) => request.method === 'POST' && !/^application\/json/.test(request.contentType);
const isXhrPost = (request) => request.method === 'POST' && /^application\/json/.test(request.contentType);
const isEventSource = (request) => request.method === 'GET' && /text\/event-stream/.test(request.accept);

/** Where the delivery of `token` was seen, per transport; each returns true once it was. */
const DELIVERED = {
  'websocket': (traffic, token) => traffic.sockets.some((s) => s.received.some((f) => f.includes(token))),
  'cross-origin-long-polling': (traffic, token) =>
    traffic.http.some((r) => isCorsPost(r) && r.response?.includes(token)),
  'callback-polling': (traffic, token) => traffic.http.some((r) => isJsonp(r) && r.response?.includes(token)),
  'eventsource': (traffic, token, sse) => sse.some((data) => data.includes(token)),
  'long-polling': (traffic, token) => traffic.http.some((r) => isXhrPost(r) && r.response?.includes(token)),
};

/** The request shape each HTTP transport's connects must have. */
const CONNECT_CARRIER = {
  'cross-origin-long-polling': isCorsPost,
  'callback-polling': isJsonp,
  'eventsource': isXhrPost,
  'long-polling': isXhrPost,
};

function assertTransport(expected, origin, traffic) {
  const handshakes = traffic.sent().filter(({ message }) => message.channel === '/meta/handshake');
  assert.ok(handshakes.length > 0, `no handshake seen\n${traffic.summary()}`);
  // A cross-origin page may only handshake over JSON-P (spec §9.1); same-origin uses XHR.
  const handshakeCarrier = origin === 'cross' ? isJsonp : isXhrPost;
  for (const { request } of handshakes) {
    assert.ok(handshakeCarrier(request), `handshake over ${request.method} ${request.url}`);
  }
  if (expected === 'websocket') assertWebSocket(traffic);
  else assertHttpConnects(expected, origin, traffic);
  assertSideChannels(expected, traffic);
}

function assertWebSocket(traffic) {
  const frames = traffic.sockets.flatMap((s) => s.sent).flatMap((f) => JSON.parse(f));
  const connects = frames.filter((m) => m.channel === '/meta/connect');
  assert.ok(connects.length > 0, `no /meta/connect over the WebSocket\n${traffic.summary()}`);
  for (const m of connects) assert.equal(m.connectionType, 'websocket');
  assert.ok(traffic.sockets.every((s) => s.url.startsWith(traffic.wsEndpoint)), 'WebSocket to the wrong URL');
}

function assertHttpConnects(expected, origin, traffic) {
  assert.equal(traffic.sockets.length, 0, `a WebSocket was opened\n${traffic.summary()}`);
  // Until the upgrade after the handshake completes, connects ride the handshake's transport.
  const handshakeType = origin === 'cross' ? 'callback-polling' : 'long-polling';
  const connects = traffic.connects();
  const upgraded = connects.findIndex(({ message }) => message.connectionType === expected);
  assert.ok(upgraded >= 0, `no connect declared ${expected}\n${traffic.summary()}`);
  connects.forEach(({ request, message }, i) => {
    const want = i < upgraded ? handshakeType : expected;
    assert.equal(message.connectionType, want, `connect #${i} declared ${message.connectionType}`);
    if (i < upgraded) return;
    assert.ok(CONNECT_CARRIER[expected](request), `${expected} connect carried by ${request.method} ${request.url}`);
  });
}

/** EventSource streams, CORS preflights and POSTs appear only on the transports that use them. */
function assertSideChannels(expected, traffic) {
  const streams = traffic.http.filter(isEventSource);
  if (expected === 'eventsource') {
    const clientId = traffic.connects()[0].message.clientId;
    const paths = streams.map((r) => new URL(r.url).pathname);
    assert.ok(paths.includes(`${MOUNT}/${clientId}`), `no EventSource stream at <mount>/<clientId>: ${paths}`);
  } else {
    assert.equal(streams.length, 0, `an EventSource stream was opened\n${traffic.summary()}`);
  }
  if (expected === 'callback-polling') {
    assert.equal(traffic.http.filter((r) => r.method === 'POST').length, 0, 'a POST was sent under JSON-P');
  }
  if (expected === 'cross-origin-long-polling') {
    assert.ok(traffic.http.some(isCorsPost), `no CORS POST\n${traffic.summary()}`);
    assert.ok(traffic.preflights.some((p) => p.status === 200), `no answered preflight\n${traffic.summary()}`);
  } else {
    assert.deepEqual(traffic.preflights, [], 'a CORS preflight was sent');
  }
}

// --- Running one case -----------------------------------------------------------------------------

async function launchBrowser() {
  const userDataDir = mkdtempSync(join(tmpdir(), 'bayou-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

async function ingest(server, channel, data) {
  const response = await fetch(server.url + MOUNT, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, data }),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  assert.equal(response.status, 200);
  const replies = await response.json();
  assert.equal(replies[0]?.successful, true, `ingest publish failed: ${JSON.stringify(replies)}`);
}

async function runCase({ origin, disable, expected }) {
  const cleanup = [];
  try {
    const server = await startServer({ mounts: [MOUNT] });
    cleanup.unshift(() => server.stop());
    const html = pageHtml(server.url, disable);
    let pageUrl;
    if (origin === 'cross') {
      const pages = await startPageServer(html);
      cleanup.unshift(() => pages.stop());
      pageUrl = pages.url;
    }
    const browser = await launchBrowser();
    cleanup.unshift(() => browser.close());

    const page = await browser.context.newPage();
    await page.addInitScript(RECORD_EVENT_SOURCE);
    if (origin === 'same') {
      pageUrl = `${server.url}/app.html`;
      await page.route(pageUrl, (route) => route.fulfill({ contentType: 'text/html', body: html }));
    }
    const traffic = new Traffic(page, server.url);
    traffic.wsEndpoint = server.url.replace(/^http/, 'ws') + MOUNT;
    await traffic.recordPreflights(browser.context, page, server.url);
    const pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(String(error)));

    await page.goto(pageUrl);
    await page.waitForFunction(() => window.ready || window.failed, null, { timeout: WAIT_MS });
    assert.equal(await page.evaluate(() => window.failed), undefined, 'the page failed to subscribe');

    // The client handshakes on one transport and upgrades afterwards; a message published while
    // it still holds a connect on the first would legitimately arrive there. Publish once it has
    // sent a connect on the transport under test (then no other connect is outstanding).
    await traffic.waitUntil(() => traffic.connectedOver(expected), `a /meta/connect over ${expected}`);
    const token = `token-${randomUUID()}`;
    await ingest(server, CHANNEL, { token, text: 'hello browser' });
    await page.waitForFunction(() => window.received.length > 0, null, { timeout: WAIT_MS });
    assert.deepEqual(await page.evaluate(() => window.received), [{ token, text: 'hello browser' }]);

    // The page's own EventSource listener runs before Faye's, so the event is recorded by now.
    const sse = await page.evaluate(() => window.__sse);
    await traffic.waitUntil(() => DELIVERED[expected](traffic, token, sse), `the delivery seen over ${expected}`);

    if (process.env.BAYOU_TEST_VERBOSE) console.log(traffic.summary());
    assert.equal(await page.evaluate(() => window.fayeClient._dispatcher.connectionType), expected);
    assertTransport(expected, origin, traffic);
    assert.deepEqual(pageErrors, []);
  } finally {
    for (const step of cleanup) await step();
  }
}

// --- The cases ------------------------------------------------------------------------------------

const CASES = [
  { name: 'cross-origin page over WebSocket (JSON-P handshake)', origin: 'cross', disable: [], expected: 'websocket' },
  { name: 'cross-origin page over CORS long-polling', origin: 'cross', disable: ['websocket'], expected: 'cross-origin-long-polling' },
  {
    name: 'cross-origin page over JSON-P',
    origin: 'cross',
    disable: ['websocket', 'cross-origin-long-polling'],
    expected: 'callback-polling',
  },
  { name: 'same-origin page over WebSocket', origin: 'same', disable: [], expected: 'websocket' },
  { name: 'same-origin page over EventSource', origin: 'same', disable: ['websocket'], expected: 'eventsource' },
  { name: 'same-origin page over XHR long-polling', origin: 'same', disable: ['websocket', 'eventsource'], expected: 'long-polling' },
];

describe('browser client (Chromium)', () => {
  for (const testCase of CASES) {
    test(testCase.name, PER_TEST, () => runCase(testCase));
  }
});
