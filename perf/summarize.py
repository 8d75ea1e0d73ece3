#!/usr/bin/env python3
"""Turns perf/compare.sh's raw bayou-bench JSON lines into the RESULTS.md section.

Usage: summarize.py RAW_DIR COMMIT MACHINE LOAD ELAPSED_SECS PARAMS
RAW_DIR holds <scenario>.<server>.json (the bench's stdout; its last line is the JSON report)
and commands.txt.
"""
import json
import os
import sys

raw, commit, machine, load, elapsed, params = sys.argv[1:7]
SERVERS = ["node", "bayou-uring", "bayou-epoll", "floor-uring", "floor-epoll"]
NAMES = {"node": "Node Faye", "bayou-uring": "Bayou uring", "bayou-epoll": "Bayou epoll",
         "floor-uring": "floor uring", "floor-epoll": "floor epoll"}


def load_report(sc, srv):
    path = os.path.join(raw, f"{sc}.{srv}.json")
    try:
        lines = [l for l in open(path).read().splitlines() if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


SCENARIOS = ["conns", "ramp", "fanout-rate", "fanout-max", "users", "users-max", "users-batch", "users-steady",
             "longpoll"]
R = {(sc, srv): load_report(sc, srv) for sc in SCENARIOS for srv in SERVERS}


def val(sc, srv, key, scale=1.0):
    r = R.get((sc, srv))
    if not r or r.get(key) is None:
        return None
    return r[key] * scale


def fmt(v, digits=1):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(a, b):
    return None if a is None or not b else a / b


# (workload, scenario, key, unit scale, unit, budget kind, budget value, Node figure noted in DESIGN)
BUDGETS = [
    ("idle subscribed WebSocket client, memory (bytes/client)", "conns",
     "server_bytes_per_client", 1, "abs", 1024, "at most 1 KiB"),
    ("client set-up over WebSocket (CPU-us/client)", "conns", "server_cpu_us_per_client", 1,
     "floor", 1.25, "at most 1.25x the floor"),
    ("fan-out 1 x 1,000, 20 publishes/s (CPU-us/delivery)", "fanout-rate",
     "server_cpu_us_per_delivery", 1, "floor", 1.25, "at most 1.25x the floor"),
    ("fan-out at the highest rate, 64 publishes in flight (CPU-us/delivery)", "fanout-max",
     "server_cpu_us_per_delivery", 1, "abs", 1.0, "at most 1 CPU-us"),
    ("fan-out at the highest rate, 64 in flight (deliveries/s; Node's share of 2 busy cores caps it)",
     "fanout-max", "deliveries_per_sec", 1, "none", None, "-"),
    ("fan-out steady, 20 publishes/s x 1,000 (p99 ms)", "fanout-rate", "latency_p99_us",
     0.001, "abs", 2.0, "p99 under 2 ms"),
    ("notifications, one POST per message, 4,000/s (CPU-us/publish)", "users",
     "server_cpu_us_per_message", 1, "floor", 1.25, "at most 1.25x the floor"),
    ("notifications, 100 messages per POST, 10,000/s (CPU-us/message)", "users-batch",
     "server_cpu_us_per_message", 1, "abs", 3.0, "at most 3 CPU-us"),
    ("notifications steady, 2,000/s (p99 ms)", "users-steady", "latency_p99_us", 0.001, "abs",
     1.0, "p99 under 1 ms"),
    ("long-polling, 500 clients, 2,000/s (CPU-us/message)", "longpoll", "server_cpu_us_per_message", 1,
     "floor", 1.25, "at most 1.25x the floor"),
]


def verdict(kind, budget, bayou, floor, node=None):
    if bayou is None:
        return "no figure"
    if kind == "abs":
        return "met" if bayou <= budget else "**missed**"
    if kind == "floor":
        if not floor:
            return "no floor"
        return "met" if bayou <= budget * floor else "**missed**"
    return "-"


out = []
p = out.append
p("## Bayou against Node Faye and the floor (`perf/compare.sh`)")
p("")
p(f"- Machine: {machine}; load average when the run started: {load} (a shared machine: "
  "other builds were running, so latency tails are noisy; CPU per unit is steadier).")
p(f"- Commit: `{commit}`. Release build. Parameters: {params}; the run took {elapsed} s.")
p("- Command: `perf/compare.sh` (every bench command is listed at the end). Each scenario runs "
  "against a fresh server process, one server after the other: Node Faye 1.4.3 "
  "(`tests/node/faye-server.mjs`, in-memory engine, mount `/faye`, timeout 45 s), Bayou with 2 "
  "workers on each driver, and `bayou-floor` (the bare baseline: same socket operations, no "
  "protocol logic) with 2 workers on each driver.")
p("- Method: server CPU is the sum of `/proc/<pid>/task/*/schedstat` run times over the phase "
  "(set-up for CPU per client; publishing until the last delivery for the rest), divided by "
  "the units of work; memory is `VmRSS` growth over the set-up and hold, divided by the "
  "clients. Latency is publish-to-delivery: each published `data` carries its send time "
  "on the machine's monotonic clock. The harness is one process on the same 2 cores.")
p("")
p("### Budgets")
p("")
p("| workload | Node Faye | Bayou uring | Bayou epoll | floor uring | floor epoll | "
  "Bayou/Node (uring) | Bayou/floor (uring, epoll) | budget | uring | epoll |")
p("|---|---|---|---|---|---|---|---|---|---|---|")
for name, sc, key, scale, kind, budget, text in BUDGETS:
    v = {srv: val(sc, srv, key, scale) for srv in SERVERS}
    rf_u = ratio(v["bayou-uring"], v["floor-uring"])
    rf_e = ratio(v["bayou-epoll"], v["floor-epoll"])
    rn = ratio(v["bayou-uring"], v["node"])
    cells = [fmt(v[s], 2 if (v[s] or 0) < 10 else 1) for s in SERVERS]
    p(f"| {name} | " + " | ".join(cells) +
      f" | {fmt(rn, 3)} | {fmt(rf_u, 2)}, {fmt(rf_e, 2)} | {text} | "
      f"{verdict(kind, budget, v['bayou-uring'], v['floor-uring'], v['node'])} | "
      f"{verdict(kind, budget, v['bayou-epoll'], v['floor-epoll'], v['node'])} |")
p("")
p("### Every figure, per scenario")
for sc in SCENARIOS:
    rows = [(srv, R[(sc, srv)]) for srv in SERVERS if R.get((sc, srv))]
    if not rows:
        continue
    r0 = rows[0][1]
    p("")
    p(f"**{sc}**: {r0['clients']:,} clients, {r0['messages']:,} messages, batch {r0['batch']}, "
      f"rate {'max' if not r0['rate'] else fmt(r0['rate'], 0) + '/s'}")
    p("")
    p("| server | reached | delivered / expected | lost | dup | publish errors | deliveries/s | "
      "p50 ms | p90 | p99 | p99.9 | max | set-up/s | set-up p99 ms | CPU-us per client | per delivery | "
      "per message | per POST | server % core | harness % core | bytes/client |")
    p("|---|" + "---|" * 20)
    for srv, r in rows:
        lat = [fmt(r[k] / 1000, 2) for k in ("latency_p50_us", "latency_p90_us", "latency_p99_us",
                                             "latency_p999_us", "latency_max_us")]
        flag = " (aborted)" if r.get("aborted") else ""
        p(f"| {NAMES[srv]}{flag} | {r['reached']:,} | {r['delivered']:,} / {r['expected']:,} | "
          f"{r['lost']} | {r['duplicated']} | {r['publish_errors']} | "
          f"{fmt(r['deliveries_per_sec'], 0)} | " + " | ".join(lat) + " | "
          f"{fmt(r['setup_per_sec'], 0)} | {fmt(r['setup_p99_us'] / 1000, 1)} | "
          f"{fmt(r['server_cpu_us_per_client'])} | "
          f"{fmt(r['server_cpu_us_per_delivery'], 2)} | {fmt(r['server_cpu_us_per_message'], 2)} | "
          f"{fmt(r['server_cpu_us_per_post'], 1)} | {fmt(r['server_core_pct'], 0)} | "
          f"{fmt(r['harness_core_pct'], 0)} | {fmt(r['server_bytes_per_client'], 0)} |")
    plots = [srv for srv, _ in rows if os.path.exists(os.path.join(raw, f"{sc}.{srv}.svg"))]
    if plots:
        p("")
        p("Latency by percentile: " + ", ".join(
            f"[{NAMES[s]}](plots/{sc}.{s}.svg)" for s in plots))
p("")
p("### Commands")
p("")
p("```")
try:
    p(open(os.path.join(raw, "commands.txt")).read().rstrip())
except OSError:
    pass
p("```")
print("\n".join(out))
