// The deploy and crash scenarios of issue 18, Bayou and Node Faye 1.4.3 + faye-redis 0.2.0 side
// by side in one run: Debian's HAProxy in front of two processes on one redis-server (round-robin
// per request, or cookie-sticky as an ALB with stickiness), /readyz health checks every 200 ms,
// real faye@1.4.3 Node clients over WebSocket each subscribed to /users/<i>, and one publisher
// POSTing a numbered message per user in turn through the balancer at a fixed rate.
//
// Scenarios (as the issue measured them): steady state; a rolling deploy (start A2, SIGTERM A,
// start B2, SIGTERM B); task loss (SIGKILL A, start A2, SIGKILL B, start B2). Each row says how
// many clients got their subscription, what the publisher got accepted, and over the subscribed
// clients the messages lost, duplicated and out of order and the handshakes; then the CPU the
// servers (and Redis) spent per 1,000 accepted messages and the Redis commands per message.
//
// Usage: node perf/balanced.mjs [--clients 200] [--rate 200] [--seconds 10] [--servers bayou,faye]
//        [--only steady,deploy,crash] [--balancers round-robin,sticky]
// Needs: cargo build --release, haproxy and redis-server (./test.sh installs both), and
// `npm ci` in perf/faye-redis (done here when missing). Every phase is bounded and stops.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, freePort, redisCommand } from '../tests/node/redis.mjs';
import { startBalancer } from '../tests/node/haproxy.mjs';
import { until } from '../tests/node/poll.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const FAYE_DIR = join(ROOT, 'perf/faye-redis');
if (!existsSync(join(FAYE_DIR, 'node_modules'))) {
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: FAYE_DIR, stdio: 'ignore' });
}
const faye = createRequire(join(FAYE_DIR, 'package.json'))('faye');

const opt = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
};
const CLIENTS = Number(opt('clients', 200));
const RATE = Number(opt('rate', 200));
const SECONDS = Number(opt('seconds', 10));
const SERVERS = opt('servers', 'bayou,faye').split(',');
const ONLY = opt('only', 'steady,deploy,crash').split(',');
const BALANCERS = opt('balancers', 'round-robin,sticky').split(',');
const BAYOU = process.env.BAYOU_BIN || join(ROOT, 'target/release/bayou');
const WAIT_MS = 60_000;
const TICKS = 100; // /proc/<pid>/stat counts CPU in 1/100 s on Linux

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- The processes --------------------------------------------------------------------------

/** CPU seconds (user + system) of a live process, or null once it has gone. */
function cpuOf(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return null;
  }
}

/** Every server process of a run, its CPU sampled until it exits (the last sample counts). */
function cpuMeter() {
  const last = new Map();
  const sample = () => {
    for (const [pid, v] of last) {
      const now = cpuOf(pid);
      if (now !== null) last.set(pid, { ...v, now });
    }
  };
  const timer = setInterval(sample, 100);
  return {
    add(pid) { const now = cpuOf(pid) ?? 0; last.set(pid, { from: now, now }); },
    /** Forgets what was spent so far (start-up and subscriptions are not the scenario). */
    reset() { sample(); for (const v of last.values()) v.from = v.now; },
    sample,
    total() { sample(); return [...last.values()].reduce((a, v) => a + v.now - v.from, 0); },
    stop() { clearInterval(timer); },
  };
}

/** A slot behind the balancer: fixed ports, a process started and stopped at will. */
async function slot(kind, name) {
  const port = await freePort();
  const adminPort = await freePort();
  // Bayou answers /readyz on its admin listener, Node Faye (perf/faye-redis) on its own port.
  return { name, port, adminPort, checkPort: kind === 'bayou' ? adminPort : port, child: null };
}

function spawnServer(kind, s, redis) {
  if (kind === 'bayou') {
    // Every client comes through the balancer from 127.0.0.1: the per-address handshake
    // limit (200, then 20/s) is for the open internet, so it is off here.
    return spawn(BAYOU, ['--listen', `127.0.0.1:${s.port}`, '--admin-listen', `127.0.0.1:${s.adminPort}`,
      '--workers', '2', '--handshake-rate', '0', '--engine', redis.url, '--drain-secs', '15'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  }
  return spawn(process.execPath, [join(FAYE_DIR, 'server.mjs'), '--listen', `127.0.0.1:${s.port}`,
    '--engine', redis.url], { stdio: ['ignore', 'pipe', 'pipe'] });
}

async function startIn(kind, s, redis, cpu) {
  const child = spawnServer(kind, s, redis);
  let output = '';
  child.stdout.on('data', (c) => { output += c; });
  child.stderr.on('data', (c) => { output = (output + c).slice(-16_000); });
  s.exited = new Promise((r) => child.once('exit', r));
  s.child = child;
  s.output = () => output;
  cpu.add(child.pid);
  await until(() => /listening on/.test(output), `${kind} ${s.name} listening:\n${output}`, 20_000);
  // The backplane connected before the balancer sends it anyone.
  if (kind === 'bayou') {
    await until(async () => {
      const text = await (await fetch(`http://127.0.0.1:${s.adminPort}/metrics`)).text();
      return /^bayou_backplane_up 1$/m.test(text);
    }, `${s.name}: the backplane up`, 20_000);
  }
}

/** `signal` to the slot's process; waits (bounded) for it to exit, a drain included. */
async function stopSlot(s, signal, cpu) {
  if (!s.child) return;
  cpu.sample();
  s.child.kill(signal);
  await Promise.race([s.exited, sleep(WAIT_MS)]);
  if (s.child.exitCode === null && s.child.signalCode === null) {
    s.child.kill('SIGKILL');
    await s.exited;
  }
  s.child = null;
}

// --- The clients and the publisher ----------------------------------------------------------

function client(url, user) {
  const c = new faye.Client(`${url}/faye`);
  c.numbers = [];
  c.handshakes = 0;
  c.addExtension({ outgoing: (m, cb) => { if (m.channel === '/meta/handshake') c.handshakes++; cb(m); } });
  c.subscribed = new Promise((resolve) => {
    c.subscribe(`/users/${user}`, (data) => c.numbers.push(data.n)).then(() => resolve(true), () => resolve(false));
    setTimeout(() => resolve(false), 30_000);
  });
  c.user = user;
  return c;
}

/** One publisher, one POST at a time, paced to `RATE` a second, users in turn, until stopped. */
function publisher(url, users) {
  const accepted = new Map(users.map((u) => [u, []]));
  let stopping = false;
  let failed = 0;
  let n = 0;
  const run = (async () => {
    const interval = 1000 / RATE;
    let next = Date.now();
    while (!stopping) {
      const user = users[n % users.length];
      n++;
      try {
        const res = await fetch(`${url}/faye`, {
          method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ channel: `/users/${user}`, data: { n } }),
        });
        const reply = await res.json().catch(() => null);
        if (res.status === 200 && reply?.[0]?.successful) accepted.get(user).push(n);
        else failed++;
      } catch {
        failed++;
      }
      next += interval;
      await sleep(Math.max(0, next - Date.now()));
    }
  })();
  return { accepted, async stop() { stopping = true; await run; return { sent: n, failed }; } };
}

const firsts = (numbers) => numbers.filter((n, k) => numbers.indexOf(n) === k);

function tally(clients, subscribed, accepted) {
  const t = { lost: 0, duplicated: 0, outOfOrder: 0, lostUnsubscribed: 0 };
  clients.forEach((c, k) => {
    const want = accepted.get(c.user);
    if (!subscribed[k]) { t.lostUnsubscribed += want.length; return; }
    const got = new Set(c.numbers);
    t.lost += want.filter((n) => !got.has(n)).length;
    t.duplicated += c.numbers.length - got.size;
    t.outOfOrder += firsts(c.numbers).filter((n, i, f) => i > 0 && n < f[i - 1]).length;
  });
  return t;
}

async function redisCalls(redis) {
  const text = await redisCommand(redis.port, 'INFO commandstats');
  return [...text.matchAll(/calls=(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
}

async function redisCpu(redis) {
  const text = await redisCommand(redis.port, 'INFO cpu');
  const v = (k) => Number(new RegExp(`${k}:([0-9.]+)`).exec(text)?.[1] || 0);
  return v('used_cpu_user') + v('used_cpu_sys');
}

// --- One scenario ---------------------------------------------------------------------------

async function scenario(kind, balancer, name) {
  const clientsWanted = name === 'steady' ? Math.min(50, CLIENTS) : CLIENTS;
  const redis = await startRedis();
  const cpu = cpuMeter();
  const slots = [];
  for (const name of ['a', 'b', 'a2', 'b2']) slots.push(await slot(kind, name));
  const [a, b, a2, b2] = slots;
  let lb;
  const clients = [];
  try {
    await startIn(kind, a, redis, cpu);
    await startIn(kind, b, redis, cpu);
    lb = await startBalancer(slots, { sticky: balancer === 'sticky' });
    await lb.waitStates({ a: 'UP', b: 'UP', a2: 'DOWN', b2: 'DOWN' });
    for (let i = 0; i < clientsWanted; i++) clients.push(client(lb.url, i));
    const subscribed = await Promise.all(clients.map((c) => c.subscribed));
    cpu.reset();
    await redisCommand(redis.port, 'CONFIG RESETSTAT');
    const redisCpuFrom = await redisCpu(redis);
    const pub = publisher(lb.url, clients.map((c) => c.user));
    await sleep(name === 'steady' ? SECONDS * 1000 : 2000);
    if (name === 'deploy' || name === 'crash') {
      const signal = name === 'deploy' ? 'SIGTERM' : 'SIGKILL';
      // A deploy starts the replacement first; a lost task is replaced after it died.
      if (name === 'deploy') { await startIn(kind, a2, redis, cpu); await lb.waitStates({ a2: 'UP' }); }
      await stopSlot(a, signal, cpu);
      if (name === 'crash') { await startIn(kind, a2, redis, cpu); }
      await lb.waitStates({ a: 'DOWN', a2: 'UP' });
      await sleep(2000);
      if (name === 'deploy') { await startIn(kind, b2, redis, cpu); await lb.waitStates({ b2: 'UP' }); }
      await stopSlot(b, signal, cpu);
      if (name === 'crash') { await startIn(kind, b2, redis, cpu); }
      await lb.waitStates({ b: 'DOWN', b2: 'UP' });
      await sleep(3000);
    }
    const { sent, failed } = await pub.stop();
    const accepted = pub.accepted;
    const total = [...accepted.values()].reduce((s, v) => s + v.length, 0);
    // Everything accepted arrives (bounded wait), then nothing more may come.
    await until(() => tally(clients, subscribed, accepted).lost === 0, 'delivery', 30_000).catch(() => {});
    await sleep(1000);
    const t = tally(clients, subscribed, accepted);
    const serverCpu = cpu.total();
    const redisCpuUsed = (await redisCpu(redis)) - redisCpuFrom;
    const calls = (await redisCalls(redis)) - 1; // this INFO itself
    const handshakes = clients.reduce((s, c) => s + c.handshakes, 0);
    return {
      server: kind === 'bayou' ? 'Bayou' : 'Node Faye + faye-redis',
      balancer,
      scenario: name,
      subscribed: `${subscribed.filter(Boolean).length}/${clientsWanted}`,
      accepted: `${total}/${sent}`,
      publishesFailed: failed,
      lost: t.lost,
      lostByUnsubscribed: t.lostUnsubscribed,
      duplicated: t.duplicated,
      outOfOrder: t.outOfOrder,
      handshakes,
      serverCpuMsPer1000: total ? +(serverCpu * 1e6 / total).toFixed(0) : null,
      redisCpuMsPer1000: total ? +(redisCpuUsed * 1e6 / total).toFixed(0) : null,
      redisCmdsPerMsg: total ? +(calls / total).toFixed(2) : null,
    };
  } finally {
    for (const c of clients) await Promise.race([Promise.resolve(c.disconnect()), sleep(1000)]).catch(() => {});
    cpu.stop();
    if (lb) await lb.stop();
    for (const s of slots) await stopSlot(s, 'SIGKILL', cpu);
    await redis.kill();
  }
}

const PLAN = [];
for (const name of ['steady', 'deploy', 'crash']) {
  if (!ONLY.includes(name)) continue;
  for (const balancer of BALANCERS) for (const kind of SERVERS) PLAN.push([kind, balancer, name]);
}
console.log(`# ${CLIENTS} faye@1.4.3 Node WebSocket clients (50 in steady state), ${RATE} publishes/s ` +
  `through HAProxy, 2 processes (Bayou: 2 workers each) on one redis-server`);
const rows = [];
for (const [kind, balancer, name] of PLAN) {
  const row = await scenario(kind, balancer, name);
  console.log(JSON.stringify(row));
  rows.push(row);
}
console.log('\n| scenario | balancer | server | subscribed | accepted/sent | lost | lost (unsubscribed) | duplicated | out of order | handshakes | server CPU ms per 1,000 msgs | Redis CPU ms per 1,000 | Redis cmds/msg |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.scenario} | ${r.balancer} | ${r.server} | ${r.subscribed} | ${r.accepted} | ${r.lost} | ` +
    `${r.lostByUnsubscribed} | ${r.duplicated} | ${r.outOfOrder} | ${r.handshakes} | ${r.serverCpuMsPer1000} | ` +
    `${r.redisCpuMsPer1000} | ${r.redisCmdsPerMsg} |`);
}
process.exit(0);
