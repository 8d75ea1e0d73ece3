// A real redis-server for the cluster tests, on a free loopback port. ./test.sh installs
// redis-server; when it is missing, startRedis() throws (the test fails, it is not skipped).
import { spawn } from 'node:child_process';
import net from 'node:net';

const START_TIMEOUT_MS = 20_000;

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function ping(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk;
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/** Sends one inline command and resolves to the raw reply. */
export function redisCommand(port, command) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`${command}\r\n`));
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error(`redis ${command}: no reply`)); });
    socket.on('error', reject);
    socket.once('data', (chunk) => { socket.destroy(); resolve(String(chunk)); });
  });
}

/**
 * Starts redis-server (on `port`, or a free one) and resolves once it answers PING, to
 * {port, url, kill()}. kill() sends SIGKILL, as a crash would, and waits for the exit.
 */
export async function startRedis({ port } = {}) {
  port ??= await freePort();
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
  ], { stdio: 'ignore' });
  running.add(child);
  const exited = new Promise((resolve) => child.once('exit', () => { running.delete(child); resolve(); }));
  const failed = new Promise((_, reject) => child.once('error', (e) => {
    reject(new Error(`cannot start redis-server (${e.message}): run ./test.sh, which installs it`));
  }));
  const started = Date.now();
  const ready = (async () => {
    while (!(await ping(port))) {
      if (Date.now() - started > START_TIMEOUT_MS) throw new Error(`redis-server on ${port} did not answer PING`);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await Promise.race([ready, failed]);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
