// Starts the server under test for the end-to-end suites.
//
// By default this runs the Bayou binary ($BAYOU_BIN, else <repo>/target/release/bayou). With
// BAYOU_TEST_SERVER=faye it runs the reference server (real Node Faye 1.4.3, faye-server.mjs)
// with the same command line, so every test can be validated against Faye itself.
//
// The server binds port 0 and announces itself with "listening on http://127.0.0.1:PORT" on
// stdout; nothing here uses a fixed port. Every process started is killed by stop(), and any
// still running when the test process exits is killed then.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = join(HERE, '..', '..');
const CLIENT_JS_DIR = join(HERE, 'node_modules', 'faye', 'client');
const FAYE_SERVER = join(HERE, 'faye-server.mjs');

const DEFAULT_WORKERS = 2;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const LISTENING = /listening on http:\/\/127\.0\.0\.1:(\d+)/;

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Which server the suite runs against: 'bayou' (default) or 'faye'. */
export const SERVER_KIND = process.env.BAYOU_TEST_SERVER === 'faye' ? 'faye' : 'bayou';

function bayouBin() {
  const bin = process.env.BAYOU_BIN || join(REPO_ROOT, 'target', 'release', 'bayou');
  if (!existsSync(bin)) {
    throw new Error(`Bayou binary not found at ${bin}: run \`cargo build --release\` or set BAYOU_BIN`);
  }
  return bin;
}

function serverArgs({ mounts, timeout, ping, workers, listen, adminListen, extraArgs }) {
  const args = ['--listen', listen, '--workers', String(workers), '--admin-listen', adminListen];
  for (const mount of mounts) args.push('--mount', mount);
  args.push('--timeout', String(timeout));
  if (ping !== undefined) args.push('--ping', String(ping));
  args.push('--client-js', CLIENT_JS_DIR);
  // stop() sends SIGTERM: a short drain, unless the test sets its own, so a stop does not
  // wait out the 20 s default before the SIGKILL.
  if (!extraArgs.includes('--drain-secs')) args.push('--drain-secs', '1');
  return args.concat(extraArgs);
}

function normaliseListen(listen) {
  if (listen === undefined) return '127.0.0.1:0';
  if (typeof listen === 'number') return `127.0.0.1:${listen}`;
  return listen;
}

/**
 * Starts a server and resolves once it is listening: the server under test, or with
 * `kind: 'faye'` real Node Faye whatever the suite runs against (for side-by-side tests).
 *
 * `listen` (a port number or "host:port") lets a test restart a server on the port a previous
 * one used; `adminListen` ("host:port") fixes the admin port the same way (for a balancer's
 * health checks). Resolves to {url, port, process, stop(), output()}; `output()` returns what the
 * server has printed so far, for failure messages.
 */
export async function startServer({
  mounts = ['/faye'],
  timeout = 2,
  ping,
  workers = Number(process.env.BAYOU_TEST_WORKERS || DEFAULT_WORKERS),
  listen,
  adminListen = '127.0.0.1:0',
  extraArgs = [],
  kind = SERVER_KIND,
} = {}) {
  const args = serverArgs({
    mounts, timeout, ping, workers, listen: normaliseListen(listen), adminListen, extraArgs,
  });
  const [command, argv] = kind === 'faye'
    ? [process.execPath, [FAYE_SERVER, ...args]]
    : [bayouBin(), args];

  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    running.delete(child);
    resolve({ code, signal });
  }));

  let output = '';
  // Echoed line by line, each marked with the process's pid: several servers share stderr.
  let partial = '';
  const record = (chunk) => {
    output += chunk;
    if (output.length > 64_000) output = output.slice(-32_000);
    if (!process.env.BAYOU_TEST_VERBOSE) return;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const line of lines) process.stderr.write(`[${child.pid}] ${line}\n`);
  };
  child.stderr.setEncoding('utf8').on('data', record);
  child.stdout.setEncoding('utf8');

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  let port;
  try {
    port = await waitForListening(child, exited, record, () => output);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, port, process: child, stop, output: () => output };
}

function waitForListening(child, exited, record, output) {
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      reject(new Error(`server did not print "listening on" within ${START_TIMEOUT_MS} ms:\n${output()}`));
    }, START_TIMEOUT_MS);
    child.stdout.on('data', (chunk) => {
      record(chunk);
      if (stdout === null) return;
      stdout += chunk;
      const match = LISTENING.exec(stdout);
      if (!match) return;
      stdout = null;
      clearTimeout(timer);
      resolve(Number(match[1]));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (code ${code}, signal ${signal}) before listening:\n${output()}`));
    });
  });
}

/** How long a test waits for anything the server or client should do, in milliseconds. */
export const WAIT_MS = 30_000;

/** `promise`, or a rejection naming `what` after `ms`. */
export function withDeadline(promise, what, ms = WAIT_MS) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Resolves once `condition()` holds; it is re-checked whenever a listener in `listeners` (a Set
 * the caller calls on every change) fires.
 */
export function waitUntil(listeners, condition, what) {
  let check;
  const met = new Promise((resolve) => {
    check = () => { if (condition()) resolve(); };
    listeners.add(check);
    check();
  });
  return withDeadline(met, what).finally(() => listeners.delete(check));
}

/** Headless Chromium for the browser suites: Debian's, or BAYOU_TEST_CHROMIUM. */
export const CHROMIUM = process.env.BAYOU_TEST_CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // Chromium 14x+ blocks a page whose address space it cannot tell (one fulfilled by page.route)
  // from reaching 127.0.0.1 over WebSocket (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
  '--disable-features=LocalNetworkAccessChecks',
];
