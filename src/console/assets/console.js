// Bayou's status page and test console. Polls /api/stats every 2 s while open (nothing runs on
// the server otherwise), keeps 5 minutes of samples in memory, draws the rates as SVG lines.
// No outside scripts: the test console loads the Faye client from the Bayou server itself.
'use strict';

const POLL_MS = 2000;
const KEEP = 150; // samples: 5 minutes at 2 s
const CHARTS = [
  ['publishes', 'Publishes', (c) => c.publishes],
  ['deliveries', 'Deliveries', (c) => c.deliveries],
  ['handshakes', 'Handshakes', (c) => c.handshakes],
  ['slow', 'Slow-consumer cuts', (c) => c.slow_consumers],
  ['refused', 'Refused (handshakes, publishes, auth hook)',
    (c) => c.handshakes_refused + c.publishes_refused + c.hook_denied + c.hook_failures],
];
const samples = [];
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElementNS(tag === 'svg' || tag === 'polyline' || tag === 'line'
    ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

const fmt = (n) => (n >= 100 || Number.isInteger(n) ? Math.round(n).toLocaleString('en') : n.toFixed(1));

/** Counters summed over every mount. */
function totals(stats) {
  const sum = {};
  for (const m of stats.mounts) for (const [k, v] of Object.entries(m.counters)) sum[k] = (sum[k] || 0) + v;
  return sum;
}

/** The bucket bound (ms) under which fraction `p` of the window's writes fell, or null. */
function percentile(bounds, now, then, p) {
  const delta = now.map((v, i) => v - (then ? then[i] : 0));
  const total = delta[delta.length - 1];
  if (!total) return null;
  const i = delta.findIndex((v) => v >= p * total);
  return i < 0 ? null : bounds[i] / 1000;
}

function render(stats) {
  const now = performance.now();
  samples.push({ t: now, stats, totals: totals(stats) });
  while (samples.length > KEEP) samples.shift();
  $('version').textContent = `v${stats.version}, ${stats.workers} workers, up ${fmt(stats.uptime_s / 60)} min`;
  const state = $('state');
  state.textContent = stats.draining ? 'draining' : 'serving';
  state.className = `pill ${stats.draining ? 'bad' : 'ok'}`;
  const bp = $('backplane');
  if (stats.backplane) {
    const n = stats.backplane.processes;
    bp.textContent = stats.backplane.up
      ? `Redis backplane up, ${n} process${n === 1 ? '' : 'es'} sharing it`
      : 'Redis backplane down (local delivery only)';
    bp.className = `pill ${stats.backplane.up ? 'ok' : 'bad'}`;
  }
  $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;

  const c = stats.connections;
  const figures = [['WebSocket', c.websocket], ['of them parked', c.websocket_parked],
    ['EventSource', c.eventsource], ['HTTP', c.http]];
  if (stats.backplane) figures.push(['sessions moved in', stats.backplane.moved_in], ['adopted', stats.backplane.adopted]);
  $('connections').replaceChildren(...figures.map(([name, v]) =>
    el('div', { class: 'figure', 'data-figure': name }, el('b', {}, fmt(v)), el('span', {}, name))));

  // A minute ago, or the oldest sample.
  const old = samples.find((s) => now - s.t <= 61_000) || samples[0];
  const rows = stats.mounts.map((m, i) => {
    const h = m.publish_to_write;
    const then = old !== samples[samples.length - 1] ? old.stats.mounts[i]?.publish_to_write.cumulative : null;
    const p = (q) => { const v = percentile(h.bounds_us, h.cumulative, then, q); return v === null ? '–' : `≤ ${v} ms`; };
    return el('tr', { 'data-mount': m.path }, el('td', {}, m.path), el('td', {}, fmt(m.sessions)),
      el('td', {}, fmt(m.websockets)), el('td', {}, fmt(m.eventsources)),
      el('td', {}, fmt(m.subscriptions)), el('td', {}, fmt(m.channels)), el('td', {}, fmt(m.queued)),
      el('td', {}, p(0.5)), el('td', {}, p(0.9)), el('td', {}, p(0.99)));
  });
  $('mounts').tBodies[0].replaceChildren(...rows);
  drawCharts();
  const select = $('mount');
  if (!select.options.length) {
    for (const m of stats.mounts) select.append(el('option', { value: m.path }, m.path));
    $('no-client').hidden = stats.client_js;
    $('go').disabled = !stats.client_js;
    const listen = stats.listen || '';
    const port = listen.split(':').pop();
    const host = /^(0\.0\.0\.0|\[::\])/.test(listen) || !listen ? location.hostname : listen.slice(0, listen.lastIndexOf(':'));
    $('server').value = `${location.protocol}//${host}:${port}`;
    $('channel').value = `/bayou-console/${Math.random().toString(36).slice(2, 10)}`;
  }
}

function drawCharts() {
  const box = $('charts');
  if (!box.children.length) {
    for (const [key, title] of CHARTS) {
      box.append(el('div', { class: 'chart', 'data-chart': key },
        el('h3', {}, title, el('span', {}, '–')),
        el('svg', { viewBox: '0 0 300 90', preserveAspectRatio: 'none' })));
    }
  }
  for (const [key, , pick] of CHARTS) {
    const rates = [];
    for (let i = 1; i < samples.length; i++) {
      const dt = (samples[i].t - samples[i - 1].t) / 1000;
      rates.push(Math.max(0, (pick(samples[i].totals) - pick(samples[i - 1].totals)) / dt));
    }
    const chart = box.querySelector(`[data-chart="${key}"]`);
    chart.querySelector('h3 span').textContent = rates.length ? `${fmt(rates[rates.length - 1])}/s` : '–';
    const top = Math.max(1, ...rates);
    const points = rates.map((r, i) => `${(300 * (i + KEEP - 1 - rates.length)) / (KEEP - 2)},${88 - (84 * r) / top}`);
    chart.querySelector('svg').replaceChildren(el('line', { x1: 0, y1: 88, x2: 300, y2: 88 }),
      el('polyline', { points: points.join(' ') }));
  }
}

async function poll() {
  try {
    const response = await fetch('/api/stats', { cache: 'no-store' });
    if (response.status === 401) { location.reload(); return; }
    render(await response.json());
  } catch (error) {
    $('state').textContent = 'unreachable';
    $('state').className = 'pill bad';
  }
  setTimeout(poll, POLL_MS);
}

// --- The test console ---------------------------------------------------------------------------

function step(text, cls = '') {
  const li = el('li', { class: cls }, text);
  $('steps').append(li);
  return li;
}

function loadClient(url) {
  return new Promise((resolve, reject) => {
    const script = el('script', { src: url });
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${url}`));
    document.head.append(script);
  });
}

const within = (promise, ms, what) => Promise.race([promise,
  new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing after ${ms / 1000} s`)), ms))]);

async function run(event) {
  event.preventDefault();
  $('steps').replaceChildren();
  $('go').disabled = true;
  const server = $('server').value.replace(/\/+$/, '');
  const mount = $('mount').value;
  const channel = $('channel').value;
  const endpoint = server + mount;
  let client;
  window.consoleResult = null;
  try {
    step(`Loading ${endpoint}/client.js`);
    await within(loadClient(`${endpoint}/client.js`), 10_000, 'loading the client');
    client = new window.Faye.Client(endpoint);
    if ($('no-websocket').checked) client.disable('websocket');
    const nonce = Math.random().toString(36).slice(2);
    let arrived;
    const got = new Promise((resolve) => { arrived = resolve; });
    step(`Subscribing to ${channel}`);
    await within(new Promise((resolve, reject) =>
      client.subscribe(channel, (data) => { if (data && data.nonce === nonce) arrived(performance.now()); })
        .then(resolve, (e) => reject(new Error(`subscription refused: ${e && e.message}`)))), 10_000, 'subscribing');
    const transport = client._dispatcher.connectionType;
    step(`Subscribed over ${transport}`, 'ok');
    const headers = { 'Content-Type': 'application/json' };
    // Sent with this one request only: never stored, never shown.
    if ($('secret').value) headers.Authorization = `Bearer ${$('secret').value}`;
    const sent = performance.now();
    const response = await within(fetch(endpoint, {
      method: 'POST', headers, body: JSON.stringify([{ channel, data: { nonce, text: 'Bayou console test' } }]),
    }), 10_000, 'publishing');
    const [reply] = await response.json();
    if (!reply || !reply.successful) throw new Error(`publish refused: ${reply && reply.error}`);
    step('Published through the HTTP ingest', 'ok');
    const at = await within(got, 10_000, 'waiting for the message');
    const via = client._dispatcher.connectionType;
    const rtt = at - sent;
    step(`Arrived over ${via} in ${rtt.toFixed(1)} ms`, 'ok');
    window.consoleResult = { ok: true, transport: via, rtt };
  } catch (error) {
    step(String(error.message || error), 'bad');
    window.consoleResult = { ok: false, error: String(error.message || error) };
  } finally {
    if (client) client.disconnect();
    $('go').disabled = false;
  }
}

$('run').addEventListener('submit', run);
poll();
