// Node Faye 1.4.3 with the auth extension a secured Faye deployment runs today: for each
// handshake and subscribe it asks the same backend Bayou's hook asks (same question, same
// answer), over a keep-alive agent with a 2 s timeout, denying on failure. The baseline of
// perf/auth-hook.mjs. Usage: node faye-hook-server.mjs [HOOK_URL]  (none: no extension)
// Prints "listening on http://HOST:PORT".
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../tests/node/package.json', import.meta.url));
const faye = require('faye');
const hook = process.argv[2];
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function ask(question) {
  return new Promise((resolve) => {
    const body = JSON.stringify(question);
    const req = http.request(hook, {
      method: 'POST', agent, timeout: 2000,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        try { resolve(JSON.parse(text)); } catch { resolve({ allow: false, error: '503::Authorisation backend unavailable' }); }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ allow: false, error: '503::Authorisation backend unavailable' }));
    req.end(body);
  });
}

const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const bayeux = new faye.NodeAdapter({ mount: '/faye', timeout: 45 });
if (hook) {
  bayeux.addExtension({
    incoming(message, request, callback) {
      if (message.channel !== '/meta/handshake' && message.channel !== '/meta/subscribe') return callback(message);
      const headers = request && request.headers && request.headers.cookie ? { cookie: request.headers.cookie } : {};
      ask({ mount: '/faye', channel: message.channel, subscription: message.subscription, ext: message.ext ?? null,
        headers, address: request?.socket?.remoteAddress ?? null, clientId: message.clientId ?? null })
        .then((answer) => {
          if (!answer.allow) message.error = answer.error || '403::Forbidden';
          callback(message);
        });
    },
  });
}
bayeux.attach(server);
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  console.log(`listening on http://${a.address}:${a.port}`);
});
process.on('SIGTERM', () => process.exit(0));
