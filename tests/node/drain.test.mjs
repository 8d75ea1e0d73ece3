// Graceful drain with the real Node Faye client: a load-balancer stand-in (a TCP proxy) sends
// new connections to Bayou A, then, once A is told to drain, to Bayou B. A closes the client's
// WebSocket with 1001; the client reconnects through the proxy to B, rehandshakes,
// resubscribes and keeps receiving; A exits 0 on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import faye from 'faye';
import { startServer, SERVER_KIND } from './server.mjs';

const WAIT_MS = 30_000;

function until(check, what) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - started > WAIT_MS) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

/** A TCP proxy whose target can change: new connections go to the current target. */
function proxy() {
  let target;
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    sockets.add(client).add(upstream);
    const end = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.pipe(upstream).pipe(client);
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    to(port) { target = { host: '127.0.0.1', port }; },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(r));
    },
  })));
}

async function ingest(port, channel, data) {
  const res = await fetch(`http://127.0.0.1:${port}/faye`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ channel, data }),
  });
  assert.equal(res.status, 200);
}

test('a draining server hands its WebSocket clients over to another process', { timeout: 90_000 }, async (t) => {
  if (SERVER_KIND === 'faye') {
    t.skip('Node Faye has no graceful drain (Bayou only)');
    return;
  }
  const a = await startServer({ timeout: 30, extraArgs: ['--drain-secs', '4'] });
  const b = await startServer({ timeout: 30 });
  const lb = await proxy();
  lb.to(a.port);
  const client = new faye.Client(`http://127.0.0.1:${lb.port}/faye`, { retry: 1 });
  try {
    const received = [];
    await client.subscribe('/handover', (m) => received.push(m));
    await until(() => client._dispatcher.connectionType === 'websocket', 'the WebSocket transport');
    await ingest(a.port, '/handover', 'from A');
    await until(() => received.length === 1, 'the message through A');

    const aExit = new Promise((resolve) => a.process.once('exit', (code) => resolve(code)));
    lb.to(b.port);
    a.process.kill('SIGTERM');

    // Once A closes the socket the client reconnects (to B), rehandshakes and resubscribes;
    // publish on B until one arrives (the client cannot have resubscribed before that).
    for (let i = 0; received.length < 2 && i < 100; i++) {
      await ingest(b.port, '/handover', 'from B');
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(received.at(-1), 'from B', 'the client keeps receiving through B');
    assert.equal(await aExit, 0, 'A exits 0 after draining');
  } finally {
    await Promise.race([Promise.resolve(client.disconnect()), new Promise((r) => setTimeout(r, 5000))]);
    await lb.close();
    await a.stop();
    await b.stop();
  }
});
