// Debian's HAProxy in front of several processes, the way an ALB spreads a Faye deployment:
// shared by tests/node/balanced.test.mjs and perf/balanced.mjs. ./test.sh installs haproxy.
// Nothing here is timed: every wait is bounded only so that a hang fails.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis.mjs';
import { until } from './poll.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts HAProxy in front of `slots` ({name, port, checkPort}): round-robin per request,
 * `GET /readyz` on each slot's checkPort every 200 ms (as an ALB target group checks).
 * With `sticky`, a cookie pins a client to the process that answered it first (ALB
 * stickiness); with `page` (HTML), `/same-origin.html` is served on the balancer's origin.
 * Resolves to {url, output(), states(), waitStates(want, ms), stop()}.
 */
export async function startBalancer(slots, { sticky = false, page = null, maxconn = 4000 } = {}) {
  const port = await freePort();
  const statsPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bayou-haproxy-'));
  const pageFile = join(dir, 'same-origin.html');
  const config = `
global
  maxconn ${maxconn}
defaults
  mode http
  option http-server-close
  # A request to a process that just died goes to another (as the ALB sends new requests
  # only to healthy targets).
  option redispatch
  retries 2
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  timeout tunnel 1h
frontend web
  bind 127.0.0.1:${port}
${page ? `  http-request return status 200 content-type "text/html; charset=utf-8" file ${pageFile} if { path /same-origin.html }` : ''}
  default_backend servers
backend servers
  balance roundrobin
${sticky ? '  cookie SERVERID insert indirect nocache' : ''}
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 200ms fall 1 rise 1
${slots.map((s) => `  server ${s.name} 127.0.0.1:${s.port} check port ${s.checkPort}${sticky ? ` cookie ${s.name}` : ''}`).join('\n')}
listen stats
  bind 127.0.0.1:${statsPort}
  stats enable
  stats uri /stats
`;
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  if (page) writeFileSync(pageFile, page);
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c) => { output += c; });
  child.stderr.on('data', (c) => { output += c; });
  const exited = new Promise((r) => child.once('exit', r));
  const lb = {
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    /** Server name -> UP or DOWN, as HAProxy sees it. */
    async states() {
      const csv = await (await fetch(`http://127.0.0.1:${statsPort}/stats;csv`)).text();
      const out = {};
      for (const line of csv.split('\n')) {
        const f = line.split(',');
        if (f[0] === 'servers' && f[1] !== 'BACKEND') out[f[1]] = f[17];
      }
      return out;
    },
    async waitStates(want, ms = 60_000) {
      await until(async () => {
        const got = await lb.states();
        return Object.entries(want).every(([k, v]) => (got[k] || '').startsWith(v));
      }, `HAProxy to see ${JSON.stringify(want)}`, ms);
    },
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await until(async () => {
    try { await lb.states(); return true; } catch { return false; }
  }, `haproxy up:\n${output}`, 20_000);
  return lb;
}
