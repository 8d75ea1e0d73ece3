// Waiting for a condition and reading a server's /metrics, shared by the multi-process suites.
// Nothing here is timed: the bound only makes a hang fail.

/** Resolves once `check()` (may be async) is truthy; rejects after `ms` or if it throws. */
export function until(check, what, ms = 30_000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = async () => {
      try {
        if (await check()) return resolve();
      } catch (e) {
        return reject(e);
      }
      if (Date.now() - started > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 25);
    };
    tick();
  });
}

/** The Prometheus text of `${admin}/metrics` as {"name{labels}": value}. */
export async function scrapeMetrics(admin) {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return out;
}
