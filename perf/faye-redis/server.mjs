// Baseline for perf/cross-node.sh: real Node Faye 1.4.3 with the faye-redis 0.2.0 engine, one
// process per node, with Bayou's command-line contract (--listen, --mount, --timeout, and
// --engine redis://HOST:PORT). Prints "listening on http://HOST:PORT" once bound.
// faye-redis takes any `redis` client version; package.json pins redis@3, the last one with
// the callback API it was written for.
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const faye = require('faye');
const fayeRedis = require('faye-redis');

const args = process.argv.slice(2);
const opts = { listen: '127.0.0.1:0', mounts: [], timeout: 45, engine: 'redis://127.0.0.1:6379' };
for (let i = 0; i < args.length; i++) {
  const [a, v] = [args[i], args[i + 1]];
  if (a === '--listen') { opts.listen = v; i++; }
  else if (a === '--mount') { opts.mounts.push(v); i++; }
  else if (a === '--timeout') { opts.timeout = Number(v); i++; }
  else if (a === '--engine') { opts.engine = v; i++; }
  else if (a.startsWith('--')) { i++; }
}
if (opts.mounts.length === 0) opts.mounts.push('/faye');
const redisUrl = new URL(opts.engine);

// /readyz for a balancer's health checks (perf/balanced.mjs), as an ALB target group checks.
const server = http.createServer((req, res) => {
  res.writeHead(req.url === '/readyz' ? 200 : 404);
  res.end();
});
for (const mount of opts.mounts) {
  const engine = { type: fayeRedis, host: redisUrl.hostname, port: Number(redisUrl.port || 6379), namespace: mount };
  new faye.NodeAdapter({ mount, timeout: opts.timeout, engine }).attach(server);
}
const [host, port] = opts.listen.split(':');
server.listen(Number(port), host, () => {
  const addr = server.address();
  console.log(`listening on http://${addr.address}:${addr.port}`);
});
process.on('SIGTERM', () => process.exit(0));
