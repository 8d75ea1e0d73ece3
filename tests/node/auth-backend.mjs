// A product backend that Bayou's authorisation hook asks, run as its own process by the tests:
// the rule of the usual Faye auth extension, kept server-side.
//
//   The user is the one named by the session cookie (`session=sess-<user>`) or by the token in
//   the message's ext (`ext.authToken = "tok-<user>"`). Anyone identified may handshake; a user
//   may subscribe to (and publish on) its own `/users/<user>` only.
//
// POST /auth       the hook: the question Bayou sends, answered {"allow": ...}
// POST /mode       {"mode": "rule" | "hang" | "garbage" | "huge" | "trickle" | "status500"}:
//                  how /auth answers from now on (a broken backend, for the failure tests)
// GET  /questions  every question received so far, as JSON
// GET  /connections  how many TCP connections /auth questions came on (keep-alive shows)
//
// Prints "listening on <port>" once it accepts connections.
import http from 'node:http';

let mode = 'rule';
const questions = [];
const askers = new Set();

function userOf(question) {
  const ext = question.ext && typeof question.ext === 'object' ? question.ext : {};
  const token = typeof ext.authToken === 'string' ? /^tok-([a-z0-9]+)$/.exec(ext.authToken) : null;
  if (token) return token[1];
  const cookie = (question.headers && question.headers.cookie) || '';
  const session = /(?:^|;\s*)session=sess-([a-z0-9]+)/.exec(cookie);
  return session ? session[1] : null;
}

function decide(question) {
  const user = userOf(question);
  if (!user) return { allow: false, error: '401::Authentication required' };
  const own = `/users/${user}`;
  switch (question.channel) {
    case '/meta/handshake':
      return { allow: true };
    case '/meta/subscribe': {
      const wanted = [].concat(question.subscription);
      if (wanted.every((s) => s === own)) return { allow: true };
      return { allow: false, error: `403:${wanted.join(',')}:Only ${own} is yours` };
    }
    default:
      if (question.channel === own) return { allow: true };
      return { allow: false, error: `403:${question.channel}:Only ${own} is yours` };
  }
}

function readBody(req) {
  return new Promise((resolve) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(body));
  });
}

const server = http.createServer(async (req, res) => {
  const body = await readBody(req);
  if (req.method === 'GET' && req.url === '/questions') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(questions));
    return;
  }
  if (req.method === 'GET' && req.url === '/connections') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ connections: askers.size }));
    return;
  }
  if (req.method === 'POST' && req.url === '/mode') {
    mode = JSON.parse(body).mode;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"ok":true}');
    return;
  }
  if (req.method !== 'POST' || !req.url.startsWith('/auth')) {
    res.writeHead(404);
    res.end();
    return;
  }
  let question;
  try { question = JSON.parse(body); } catch { question = { unparsable: body }; }
  question.contentType = req.headers['content-type'];
  questions.push(question);
  askers.add(req.socket);
  switch (mode) {
    case 'hang':
      return; // never answers; Bayou's timeout must end it
    case 'garbage':
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<html>allow: true</html>');
      return;
    case 'huge':
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(`{"allow":true,"padding":"${'x'.repeat(4 * 1024 * 1024)}"}`);
      return;
    case 'trickle': {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '14' });
      const text = '{"allow":true}';
      let i = 0;
      const timer = setInterval(() => {
        if (res.destroyed || i >= text.length) { clearInterval(timer); if (!res.destroyed) res.end(); return; }
        res.write(text[i++]);
      }, 400);
      return;
    }
    case 'status500':
      res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end('{"allow":true}');
      return;
    default:
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(decide(question)));
  }
});

server.keepAliveTimeout = 5_000;
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write(`listening on ${server.address().port}\n`);
});
