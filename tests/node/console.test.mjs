// The operator's console on the admin listener, in headless Chromium: the status page's figures
// and charts move with what the test does, its test console makes the runbook's round trip on
// WebSocket and with WebSocket unavailable, /api/stats agrees with /metrics and with the test's
// own counts, and off loopback the page and API need the admin token. A screenshot of the page
// is saved as target/test-artifacts/console.png.
//
// Bayou only (Node Faye has no console): against Faye every test is reported skipped.
// No timing assertions: every wait has a generous deadline only so that a hang fails.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, SERVER_KIND, REPO_ROOT, withDeadline, WAIT_MS, CHROMIUM, CHROMIUM_ARGS } from './server.mjs';

const require = createRequire(import.meta.url);
const faye = require('faye');

const PER_TEST = { timeout: 180_000 };
const SECRET = 'ingest-s3cret';
const TOKEN = 'admin-t0ken';

/** The admin listener's address, from the server's "admin on http://..." line. */
function adminOf(server) {
  const match = /admin on http:\/\/([^\s]+)/.exec(server.output());
  assert.ok(match, `no admin address in:\n${server.output()}`);
  return match[1].replace(/^0\.0\.0\.0:/, '127.0.0.1:');
}

async function ingest(server, channel, data) {
  const response = await withDeadline(fetch(`${server.url}/faye`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${SECRET}` },
    body: JSON.stringify({ channel, data }),
  }), 'ingest');
  const [reply] = await response.json();
  assert.equal(reply.successful, true, JSON.stringify(reply));
}

async function launch() {
  const dir = mkdtempSync(join(tmpdir(), 'bayou-chromium-'));
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  return { context, async close() { await context.close(); rmSync(dir, { recursive: true, force: true }); } };
}

/**
 * Resolves once `predicate` (run in the page) returns something truthy. Polled from here:
 * Playwright's waitForFunction evaluates strings, which the page's CSP forbids, as it should.
 */
async function waitInPage(page, predicate, arg, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await page.evaluate(predicate, arg);
    if (value) return value;
    assert.ok(Date.now() < deadline, `timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The rate a chart of the page shows now, per second (0 before it has two samples). */
async function chartRate(page, key) {
  const text = await page.textContent(`[data-chart="${key}"] h3 span`);
  return Number.parseFloat(String(text).replace(/[^\d.]/g, '')) || 0;
}

describe('the status page', () => {
  test('figures and charts move, the test console round-trips, the API agrees with /metrics', PER_TEST, async (t) => {
    if (SERVER_KIND === 'faye') { t.skip('Node Faye has no console (Bayou only)'); return; }
    const server = await startServer({ extraArgs: ['--publish-secret', SECRET] });
    const browser = await launch();
    const subscriber = new faye.Client(`${server.url}/faye`);
    try {
      const admin = adminOf(server);
      const page = await browser.context.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      // Everything the page loads comes from Bayou: the admin listener, or the server itself.
      const elsewhere = [];
      page.on('request', (r) => {
        const url = r.url();
        if (!url.startsWith(`http://${admin}/`) && !url.startsWith(`${server.url}/`)) elsewhere.push(url);
      });
      page.on('websocket', (ws) => {
        if (!ws.url().startsWith(server.url.replace(/^http/, 'ws'))) elsewhere.push(ws.url());
      });
      await page.goto(`http://${admin}/`);
      await page.waitForSelector('#mounts tr[data-mount="/faye"]', { timeout: WAIT_MS });
      assert.equal(await page.textContent('#state'), 'serving');

      // What the test does: one subscriber, then publishes until the page's chart shows them.
      const got = [];
      await withDeadline(subscriber.subscribe('/news', (d) => got.push(d)), 'subscribe');
      let published = 0;
      const deadline = Date.now() + WAIT_MS;
      while ((await chartRate(page, 'publishes')) === 0 || (await chartRate(page, 'deliveries')) === 0) {
        assert.ok(Date.now() < deadline, 'the publishes chart never moved');
        for (let i = 0; i < 10; i++) await ingest(server, '/news', published++);
        await page.waitForTimeout(300);
      }
      const sessions = await page.textContent('#mounts tr[data-mount="/faye"] td:nth-child(2)');
      assert.ok(Number(sessions) >= 1, `sessions shown: ${sessions}`);
      const websockets = await page.textContent('#mounts tr[data-mount="/faye"] td:nth-child(3)');
      assert.equal(Number(websockets), 1, 'the subscriber\'s WebSocket, on its mount');
      // A line needs two rates, so three samples.
      await waitInPage(page, () => (document.querySelector('[data-chart="publishes"] polyline')
        ?.getAttribute('points') || '').split(' ').length >= 2, null, 'a line in the publishes chart');
      await waitInPage(page, () => !document.querySelector('#mounts td:nth-child(8)').textContent.includes('–'),
        null, 'a latency percentile');

      // The API's figures: as /metrics has them, and as the test made them.
      await withDeadline((async () => { while (got.length < published) await new Promise((r) => setTimeout(r, 50)); })(), 'deliveries');
      const stats = await (await fetch(`http://${admin}/api/stats`)).json();
      const metrics = await (await fetch(`http://${admin}/metrics`)).text();
      const metric = (name) => Number(new RegExp(`^${name}\\{mount="/faye"\\} (\\d+)`, 'm').exec(metrics)?.[1]);
      const mount = stats.mounts.find((m) => m.path === '/faye');
      assert.equal(mount.counters.publishes, published);
      assert.equal(mount.counters.publishes, metric('bayou_publishes_total'));
      assert.equal(mount.counters.deliveries, published, 'one subscriber: one delivery per publish');
      assert.equal(mount.counters.deliveries, metric('bayou_deliveries_total'));
      assert.equal(mount.counters.handshakes, metric('bayou_handshakes_total'));
      assert.equal(stats.connections.websocket, Number(/^bayou_connections\{transport="websocket"\} (\d+)/m.exec(metrics)[1]));
      assert.equal(mount.websockets, metric('bayou_mount_websockets'));
      assert.equal(mount.websockets, 1);
      assert.equal(stats.client_js, true);
      assert.equal(stats.draining, false);
      assert.equal(stats.listen, `127.0.0.1:${server.port}`);
      assert.ok(!JSON.stringify(stats).includes(SECRET));

      // The test console: over WebSocket, then with WebSocket unavailable.
      await page.fill('#secret', SECRET);
      for (const withoutWebSocket of [false, true]) {
        await page.evaluate(() => { window.consoleResult = null; });
        await page.setChecked('#no-websocket', withoutWebSocket);
        await page.click('#go');
        const result = await waitInPage(page, () => window.consoleResult, null, 'the console run');
        assert.equal(result.ok, true, `console run failed: ${JSON.stringify(result)}`);
        if (withoutWebSocket) assert.notEqual(result.transport, 'websocket');
        else assert.equal(result.transport, 'websocket');
        const steps = await page.textContent('#steps');
        assert.match(steps, new RegExp(`Arrived over ${result.transport} in [\\d.]+ ms`));
      }
      assert.ok(!(await page.content()).includes(SECRET), 'the secret is shown back in the page');
      assert.deepEqual(errors, []);
      assert.deepEqual(elsewhere, [], 'requests outside Bayou');
      const artifacts = join(REPO_ROOT, 'target', 'test-artifacts');
      mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, 'console.png'), fullPage: true });
    } finally {
      subscriber.disconnect();
      await browser.close();
      await server.stop();
    }
  });
});

describe('access to the console', () => {
  test('off loopback Bayou needs an admin token to start, and the page and API need it', PER_TEST, async (t) => {
    if (SERVER_KIND === 'faye') { t.skip('Node Faye has no console (Bayou only)'); return; }
    const refused = spawn(process.env.BAYOU_BIN || join(REPO_ROOT, 'target/release/bayou'),
      ['--listen', '127.0.0.1:0', '--admin-listen', '0.0.0.0:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let said = '';
    refused.stderr.setEncoding('utf8').on('data', (c) => { said += c; });
    const code = await withDeadline(new Promise((resolve) => refused.once('exit', resolve)), 'the refusal');
    assert.equal(code, 2, said);
    assert.match(said, /is not a loopback address: the console there needs admin_token/);

    const server = await startServer({ adminListen: '0.0.0.0:0', extraArgs: ['--admin-token', TOKEN] });
    const browser = await launch();
    try {
      const admin = adminOf(server);
      assert.equal((await fetch(`http://${admin}/api/stats`)).status, 401);
      assert.equal((await fetch(`http://${admin}/api/stats`, { headers: { Authorization: 'Bearer nope' } })).status, 401);
      assert.equal((await fetch(`http://${admin}/api/stats`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status, 200);
      assert.equal((await fetch(`http://${admin}/healthz`)).status, 200);
      assert.equal((await fetch(`http://${admin}/readyz`)).status, 200);
      assert.equal((await fetch(`http://${admin}/metrics`)).status, 200);
      const page = await browser.context.newPage();
      const first = await page.goto(`http://${admin}/`);
      assert.equal(first.status(), 401);
      assert.equal(await page.locator('#mounts').count(), 0, 'the page without the token');
      await page.fill('input[name=token]', 'wrong');
      await page.click('button[type=submit]');
      await page.waitForLoadState();
      assert.equal(await page.locator('#mounts').count(), 0, 'the page with a wrong token');
      await page.fill('input[name=token]', TOKEN);
      await page.click('button[type=submit]');
      await page.waitForSelector('#mounts tr[data-mount="/faye"]', { timeout: WAIT_MS });
      const cookies = await browser.context.cookies();
      assert.ok(cookies.every((c) => !c.value.includes(TOKEN)), 'the token itself in a cookie');
      assert.ok(!server.output().includes(TOKEN), 'the token in the log');
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});
