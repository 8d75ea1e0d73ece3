// Reference server: real Node Faye 1.4.3 with Bayou's command-line contract, so the same tests
// and benchmarks run against both. Prints "listening on http://HOST:PORT" once bound.
import http from 'node:http';
import faye from 'faye';

const args = process.argv.slice(2);
const opts = { listen: '127.0.0.1:0', mounts: [], timeout: 45, ping: undefined };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const v = args[i + 1];
  if (a === '--listen') { opts.listen = v; i++; }
  else if (a === '--mount') { opts.mounts.push(v); i++; }
  else if (a === '--timeout') { opts.timeout = Number(v); i++; }
  else if (a === '--ping') { opts.ping = Number(v); i++; }
  else if (a === '--workers' || a === '--client-js' || a === '--driver' || a === '--admin-listen') { i++; }
}
if (opts.mounts.length === 0) opts.mounts.push('/faye');

const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
server.on('upgrade', (req, socket) => socket.destroy());
for (const mount of opts.mounts) {
  const bayeux = new faye.NodeAdapter({ mount, timeout: opts.timeout, ping: opts.ping });
  bayeux.attach(server);
}
const [host, port] = opts.listen.split(':');
server.listen(Number(port), host, () => {
  const addr = server.address();
  console.log(`listening on http://${addr.address}:${addr.port}`);
});
process.on('SIGTERM', () => process.exit(0));
