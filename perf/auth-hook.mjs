// What the authorisation hook costs, side by side with Node Faye 1.4.3 running the equivalent
// auth extension (perf/auth-hook/faye-hook-server.mjs), against one backend process
// (tests/node/auth-backend.mjs: ext.authToken names the user, who may subscribe to its own
// /users/<user> only). For each server, with the hook (extension) off and on:
//
//   set-up   CLIENTS clients, LANES at a time, each a handshake then a subscribe over HTTP
//            keep-alive: subscribe latency (p50, p99) and the server's CPU per client set up
//            (utime + stime from /proc, the backend's own CPU not counted);
//   hung     with the hook on and the backend hanging, HUNG questions kept waiting at all times
//            (each re-asked when its 2 s timeout answers it) while PUBLISHES sequential ingest
//            publishes run: publish latency and the server's CPU per publish, against the same
//            publishes with the backend answering.
//
// Each phase runs ROUNDS times (after one warm-up set-up); the table gives the medians.
//
// Usage: node perf/auth-hook.mjs [CLIENTS] [PUBLISHES] [ROUNDS]   (defaults 3000, 3000, 3)
// Needs: cargo build --release, and tests/node's npm packages (./test.sh installs them).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLIENTS = Number(process.argv[2] || 3000);
const PUBLISHES = Number(process.argv[3] || 3000);
const ROUNDS = Number(process.argv[4] || 3);
const LANES = 8;
const HUNG = 64;
const TICK_MS = 1000 / 100; // USER_HZ
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const children = new Set();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });

function start(command, args) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.stderr.resume();
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${command} did not start`)), 15000);
    child.stdout.setEncoding('utf8').on('data', (c) => {
      out += c;
      const m = /listening on (?:http:\/\/[\d.]+:)?(\d+)/.exec(out);
      if (m) { clearTimeout(timer); child.stdout.resume(); resolve({ child, port: Number(m[1]) }); }
    });
  });
}

const cpuMs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
};

function post(port, path, body) {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) } }, (res) => {
      let t = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { t += c; });
      res.on('end', () => resolve(JSON.parse(t)));
    });
    req.on('error', reject);
    req.end(text);
  });
}

/** Per field, the median over rounds. */
const medians = (rounds) => Object.fromEntries(Object.keys(rounds[0]).map((k) => [k, pct(rounds.map((r) => r[k]), 0.5)]));
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

async function setUp(port, pid, offset) {
  const latencies = [];
  const before = cpuMs(pid);
  let next = 0;
  await Promise.all(Array.from({ length: LANES }, async () => {
    while (next < CLIENTS) {
      const i = offset + next++;
      const ext = { authToken: `tok-u${i}` };
      const [hs] = await post(port, '/faye', [{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], ext }]);
      if (!hs.successful) throw new Error(`handshake refused: ${JSON.stringify(hs)}`);
      const t0 = process.hrtime.bigint();
      const [sub] = await post(port, '/faye', [{ channel: '/meta/subscribe', clientId: hs.clientId, subscription: `/users/u${i}`, ext }]);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (!sub.successful) throw new Error(`subscribe refused: ${JSON.stringify(sub)}`);
    }
  }));
  return { p50: pct(latencies, 0.5), p99: pct(latencies, 0.99), cpuUsPerClient: ((cpuMs(pid) - before) * 1000) / CLIENTS };
}

async function publishes(port, pid) {
  const latencies = [];
  const before = cpuMs(pid);
  for (let i = 0; i < PUBLISHES; i++) {
    const t0 = process.hrtime.bigint();
    const [r] = await post(port, '/faye', [{ channel: '/users/u0', data: { i } }]);
    latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (!r.successful) throw new Error(`publish refused: ${JSON.stringify(r)}`);
  }
  return { p50: pct(latencies, 0.5), p99: pct(latencies, 0.99), cpuUsPerPublish: ((cpuMs(pid) - before) * 1000) / PUBLISHES };
}

/** Keeps HUNG subscribes waiting on a hung backend until `stop()`; counts their answers. */
function hang(port, clientId) {
  let running = true;
  let answered = 0;
  const lanes = Array.from({ length: HUNG }, async () => {
    while (running) {
      await post(port, '/faye', [{ channel: '/meta/subscribe', clientId, subscription: '/users/hung', ext: { authToken: 'tok-hung' } }]);
      answered++;
    }
  });
  return { async stop() { running = false; await Promise.all(lanes); return answered; } };
}

const backend = await start(process.execPath, [join(ROOT, 'tests/node/auth-backend.mjs'), '0']);
const hookUrl = `http://127.0.0.1:${backend.port}/auth`;
const mode = (m) => post(backend.port, '/mode', { mode: m });

const servers = [
  { name: 'bayou', hook: false, cmd: join(ROOT, 'target/release/bayou'), args: [] },
  { name: 'bayou', hook: true, cmd: join(ROOT, 'target/release/bayou'), args: ['--auth-hook', hookUrl] },
  { name: 'faye', hook: false, cmd: process.execPath, args: [join(ROOT, 'perf/auth-hook/faye-hook-server.mjs')] },
  { name: 'faye', hook: true, cmd: process.execPath, args: [join(ROOT, 'perf/auth-hook/faye-hook-server.mjs'), hookUrl] },
];
const rows = [];
let offset = 0;
for (const s of servers) {
  const args = s.name === 'bayou'
    ? ['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--workers', '2', '--mount', '/faye',
      '--handshake-rate', '0', '--max-clients-per-ip', '0', ...s.args]
    : s.args;
  await mode('rule');
  const server = await start(s.cmd, args);
  const pid = server.child.pid;
  // Warm-up, then the measured set-ups (fresh users each time: no cached decision).
  await setUp(server.port, pid, offset); offset += CLIENTS;
  const setups = [];
  const steadies = [];
  for (let r = 0; r < ROUNDS; r++) {
    setups.push(await setUp(server.port, pid, offset)); offset += CLIENTS;
    steadies.push(await publishes(server.port, pid));
  }
  const row = { server: s.name, hook: s.hook, setup: medians(setups), steady: medians(steadies) };
  if (s.hook) {
    const [hs] = await post(server.port, '/faye', [{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], ext: { authToken: 'tok-hung' } }]);
    await mode('hang');
    const hung = hang(server.port, hs.clientId);
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) rounds.push(await publishes(server.port, pid));
    row.hung = medians(rounds);
    row.hungAnswered = await hung.stop();
  }
  rows.push(row);
  server.child.kill('SIGTERM');
  await new Promise((r) => server.child.once('exit', r));
}
const f = (x) => x.toFixed(2);
console.log(`clients per set-up phase: ${CLIENTS} (${LANES} at a time); publishes: ${PUBLISHES}; hung questions kept waiting: ${HUNG}; medians of ${ROUNDS} rounds`);
console.log('| server | hook | subscribe p50 ms | p99 ms | server CPU µs / client set up | publish p50 ms | p99 | CPU µs / publish | same, backend hung: p50 ms | p99 | CPU µs / publish |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const h = r.hung ? `${f(r.hung.p50)} | ${f(r.hung.p99)} | ${f(r.hung.cpuUsPerPublish)}` : '- | - | -';
  console.log(`| ${r.server} | ${r.hook ? 'on' : 'off'} | ${f(r.setup.p50)} | ${f(r.setup.p99)} | ${f(r.setup.cpuUsPerClient)} | ${f(r.steady.p50)} | ${f(r.steady.p99)} | ${f(r.steady.cpuUsPerPublish)} | ${h} |`);
}
backend.child.kill('SIGTERM');
process.exit(0);
