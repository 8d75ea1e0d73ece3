//! Several Bayou processes on one real `redis-server` (`--engine redis://...`, issue 7): a
//! publish through any process reaches every subscriber once, wildcards included; a process
//! without subscribers receives nothing from Redis; a Redis crash leaves local delivery working
//! and cross-process delivery resumes once Redis is back; memory stays bounded meanwhile.
//!
//! These tests start their own redis-server and processes, so `./test.sh` runs them once, not
//! for every worker/driver combination: `cargo test --test cluster -- --ignored`.

mod common;

use common::redis::Redis;
use common::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

const M: &str = "/faye";

/// A Bayou process on the backplane, with its admin address.
struct Node {
    server: Server,
    admin: SocketAddr,
}

impl Node {
    fn start(redis: &Redis) -> Node {
        Node::start_with(redis, &[])
    }

    fn start_with(redis: &Redis, extra: &[&str]) -> Node {
        let node = Node::start_url(&redis.url(), extra);
        node.wait_metric("bayou_backplane_up", |v| v == 1.0);
        node
    }

    /// A process on the engine `url`, not waiting for its backplane.
    fn start_url(url: &str, extra: &[&str]) -> Node {
        let mut args = vec!["--mount", M, "--timeout", "10", "--engine", url];
        args.extend_from_slice(extra);
        let server = Server::start(&args);
        let admin = server.admin_addr();
        Node { server, admin }
    }

    fn metrics(&self) -> HashMap<String, f64> {
        scrape_metrics(self.admin)
    }

    fn metric(&self, name: &str) -> f64 {
        *self
            .metrics()
            .get(name)
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    /// Polls a metric until `check` holds (bounded: a hang fails, no duration is asserted).
    #[track_caller]
    fn wait_metric(&self, name: &str, check: impl Fn(f64) -> bool) -> f64 {
        for _ in 0..600 {
            let v = self.metric(name);
            if check(v) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{name} never reached the expected value (last {})",
            self.metric(name)
        );
    }

    fn readyz(&self) -> String {
        let mut conn = Conn::open(self.admin);
        conn.send(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = conn.read_response();
        assert_eq!(resp.status, 200, "a task without Redis stays ready");
        resp.text().to_string()
    }
}

impl std::ops::Deref for Node {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Whatever is queued for `cid` now: a connect that is not held (`advice.timeout` 0).
fn queued(node: &Node, cid: &str) -> Vec<String> {
    let msg = json!({"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling",
                     "advice": {"timeout": 0}, "id": "q"});
    let reply = node.bayeux(M, &msg);
    assert_eq!(
        reply[0]["successful"].as_bool(),
        Some(true),
        "{}",
        reply.encode()
    );
    data_of(&split_connect(&reply).1)
}

/// A long-polling client on `node` subscribed to `subscriptions`.
/// What `cid`'s connects on `node` collect until there are `n` messages (polled, bounded: a
/// hang fails, no duration is asserted); fewer when that many never come.
fn collect(node: &Node, cid: &str, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..400 {
        got.extend(queued(node, cid));
        if got.len() >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    got
}

fn subscriber(node: &Node, subscriptions: &[&str]) -> String {
    let cid = node.handshake(M);
    let subs: Vec<Value> = subscriptions.iter().map(|s| json!(*s)).collect();
    node.subscribe(M, &cid, Value::from(subs));
    cid
}

fn data_of(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["data"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn a_publish_on_any_of_two_nodes_reaches_every_subscriber_once_wildcards_included() {
    let redis = Redis::start();
    let (a, b) = (Node::start(&redis), Node::start(&redis));
    // On B, one client through a channel and both wildcards (one copy), one through `/**`.
    let b_all = subscriber(&b, &["/chat/room", "/chat/*", "/chat/**"]);
    let b_root = subscriber(&b, &["/**"]);
    let a_room = subscriber(&a, &["/chat/room"]);

    a.publish(M, "/chat/room", json!("from A"));
    b.publish(M, "/chat/room/deep", json!("from B"));

    // Two publishers: each arrives once, in no particular order between them.
    node_gets(&b, &b_all, &["from A", "from B"]);
    node_gets(&b, &b_root, &["from A", "from B"]);
    node_gets(&a, &a_room, &["from A"]);
    for (node, cid) in [(&b, &b_all), (&b, &b_root), (&a, &a_room)] {
        assert_eq!(queued(node, cid), Vec::<String>::new());
    }
    assert_eq!(b.metric(r#"bayou_deliveries_total{mount="/faye"}"#), 4.0);
    // B took each publish once from the log, its own too, though A's matched a channel and
    // two patterns there; A took its own (B's matches nothing on A).
    assert_eq!(b.metric("bayou_backplane_delivered_total"), 2.0);
    assert_eq!(a.metric("bayou_backplane_delivered_total"), 1.0);
    assert_eq!(a.metric("bayou_backplane_published_total"), 1.0);
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn with_three_nodes_only_those_with_subscribers_deliver_anything() {
    let redis = Redis::start();
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&redis)).collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let on_a = subscriber(a, &["/users/1"]);
    let on_b = subscriber(b, &["/users/*"]);

    for (i, node) in nodes.iter().enumerate() {
        node.publish(M, "/users/1", json!(format!("via {i}")));
    }
    node_gets(a, &on_a, &["via 0", "via 1", "via 2"]);
    node_gets(b, &on_b, &["via 0", "via 1", "via 2"]);
    assert_eq!(queued(a, &on_a), Vec::<String>::new());
    assert_eq!(queued(b, &on_b), Vec::<String>::new());

    // Every process reads the whole log, in one order; C, with no subscriber, hands its
    // workers nothing.
    c.wait_metric("bayou_backplane_received_total", |v| v == 3.0);
    assert_eq!(c.metric("bayou_backplane_delivered_total"), 0.0);
    assert_eq!(
        c.metric(r#"bayou_backplane_skipped_total{reason="unmatched"}"#),
        3.0
    );
    assert_eq!(c.metric("bayou_backplane_channels"), 0.0);
    assert_eq!(c.metric("bayou_backplane_published_total"), 1.0);
    // A and B each delivered the three publishes from the log, their own included.
    for node in [a, b] {
        assert_eq!(node.metric("bayou_backplane_delivered_total"), 3.0);
        assert_eq!(
            node.metric(r#"bayou_backplane_skipped_total{reason="echo"}"#),
            0.0
        );
    }
    assert_eq!(redis.command("XLEN bayou:0:/faye:log").trim(), ":3");

    // The last subscriber leaving a process ends its interest there.
    b.disconnect(M, &on_b);
    b.wait_metric("bayou_backplane_patterns", |v| v == 0.0);
    c.publish(M, "/users/2", json!("nobody"));
    a.publish(M, "/users/1", json!("to A"));
    node_gets(a, &on_a, &["to A"]);
    b.wait_metric("bayou_backplane_received_total", |v| v == 5.0);
    assert_eq!(b.metric("bayou_backplane_delivered_total"), 3.0);
}

#[track_caller]
fn node_gets(node: &Node, cid: &str, want: &[&str]) {
    let got = node.deliveries(M, cid, want.len());
    let mut got = data_of(&got);
    got.sort();
    assert_eq!(got, want);
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn a_redis_crash_keeps_local_delivery_and_cross_node_delivery_resumes() {
    let mut redis = Redis::start();
    let port = redis.port;
    let (a, b) = (Node::start(&redis), Node::start(&redis));
    let on_a = subscriber(&a, &["/news"]);
    let on_b = subscriber(&b, &["/news"]);
    a.publish(M, "/news", json!("before"));
    node_gets(&b, &on_b, &["before"]);
    node_gets(&a, &on_a, &["before"]);

    redis.kill();
    a.wait_metric("bayou_backplane_up", |v| v == 0.0);
    b.wait_metric("bayou_backplane_up", |v| v == 0.0);
    assert!(a.readyz().contains("backplane: down"), "{}", a.readyz());
    a.publish(M, "/news", json!("during"));
    node_gets(&a, &on_a, &["during"]);
    // A client subscribing while Redis is away is answered at once (local delivery works).
    let late = subscriber(&b, &["/late"]);
    b.publish(M, "/late", json!("local"));
    node_gets(&b, &late, &["local"]);

    let _redis = Redis::start_on(port);
    a.wait_metric("bayou_backplane_up", |v| v == 1.0);
    b.wait_metric("bayou_backplane_up", |v| v == 1.0);
    assert!(a.readyz().contains("backplane: up"));
    a.publish(M, "/news", json!("after"));
    a.publish(M, "/late", json!("resubscribed"));
    // B gets "after"; "during" (buffered by A) arrives too if B resubscribed before A resent it.
    let mut got = Vec::new();
    for _ in 0..10 {
        let (_, m) = split_connect(&b.connect(M, &on_b));
        got.extend(data_of(&m));
        if got.iter().any(|d| d == "after") {
            break;
        }
    }
    assert_eq!(got.iter().filter(|d| *d == "after").count(), 1, "{got:?}");
    assert!(
        got.iter().filter(|d| *d == "during").count() <= 1,
        "{got:?}"
    );
    node_gets(&b, &late, &["resubscribed"]);
    node_gets(&a, &on_a, &["after"]);
    let logs = a.stderr_with("redis backplane down");
    assert_eq!(logs.matches("redis backplane down").count(), 1, "{logs}");
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn memory_stays_bounded_while_redis_is_down_under_load() {
    use bayou::backplane::outbound::{LIMIT_BYTES, LIMIT_MESSAGES};
    let mut redis = Redis::start();
    let a = Node::start(&redis);
    redis.kill();
    a.wait_metric("bayou_backplane_up", |v| v == 0.0);
    let before = rss_kib(a.pid());

    // 100,000 publishes of 1 KiB (about 100 MiB) while Redis is away, 500 per request.
    let data = "x".repeat(1024);
    let batch: Vec<Value> = (0..500)
        .map(|i| json!({"channel": format!("/load/{i}"), "data": data.clone()}))
        .collect();
    let body = Value::from(batch).encode();
    for _ in 0..200 {
        let resp = a.post_json(M, &body);
        assert_eq!(resp.status, 200);
    }
    let m = a.metrics();
    assert!(
        m["bayou_backplane_buffered"] <= LIMIT_MESSAGES as f64,
        "{m:?}"
    );
    assert!(
        m["bayou_backplane_buffered_bytes"] <= LIMIT_BYTES as f64,
        "{m:?}"
    );
    let dropped = m[r#"bayou_backplane_dropped_total{direction="out"}"#];
    assert!(dropped >= 100_000.0 - LIMIT_MESSAGES as f64, "{m:?}");
    let grown_mib = (rss_kib(a.pid()) - before) as f64 / 1024.0;
    assert!(
        grown_mib < 64.0,
        "RSS grew {grown_mib:.0} MiB for 100 MiB published while Redis was down"
    );
    // Local delivery goes on.
    let on_a = subscriber(&a, &["/local"]);
    a.publish(M, "/local", json!("still here"));
    node_gets(&a, &on_a, &["still here"]);
    let logs = a.stderr_with("buffer full");
    assert_eq!(
        logs.matches("buffer full").count(),
        1,
        "logged once: {logs}"
    );
}

fn rss_kib(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn one_publishers_messages_keep_their_order_on_every_node() {
    let redis = Redis::start();
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&redis)).collect();
    let subs: Vec<String> = nodes.iter().map(|n| subscriber(n, &["/seq"])).collect();
    // One publisher: single publishes on new connections (landing on any worker), then batches.
    let mut n = 0;
    for _ in 0..100 {
        nodes[0].publish(M, "/seq", json!(n.to_string()));
        n += 1;
    }
    for _ in 0..2 {
        let batch: Vec<Value> = (n..n + 100)
            .map(|i| json!({"channel": "/seq", "data": i.to_string()}))
            .collect();
        assert_eq!(
            nodes[0].post_json(M, &Value::from(batch).encode()).status,
            200
        );
        n += 100;
    }
    let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    for (node, cid) in nodes.iter().zip(&subs) {
        let mut got = Vec::new();
        while got.len() < want.len() {
            let (_, m) = split_connect(&node.connect(M, cid));
            assert!(!m.is_empty(), "nothing more after {} messages", got.len());
            got.extend(data_of(&m));
        }
        assert_eq!(got, want);
    }
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn a_session_follows_its_client_to_any_node_and_misses_nothing() {
    // A round-robin balancer: every request of one long-polling client goes to the other
    // process, and publishes are accepted by either. The session moves each time, with what
    // was queued for it and what the log had for it meanwhile: every message exactly once, in
    // publish order, and never `Unknown client`.
    let redis = Redis::start();
    let nodes = [Node::start(&redis), Node::start(&redis)];
    let cid = nodes[0].handshake(M);
    nodes[1].subscribe(M, &cid, json!(["/users/7", "/rooms/*"]));
    let mut want = Vec::new();
    let mut got = Vec::new();
    for i in 0..90 {
        let channel = if i % 3 == 0 { "/rooms/a" } else { "/users/7" };
        nodes[i % 2].publish(M, channel, json!(i.to_string()));
        want.push(i.to_string());
        if i % 4 == 3 {
            got.extend(queued(&nodes[(i / 4) % 2], &cid));
        }
    }
    // Not subscribed: never delivered.
    nodes[0].publish(M, "/users/8", json!("other"));
    for turn in 0..20 {
        if got.len() >= want.len() {
            break;
        }
        got.extend(queued(&nodes[turn % 2], &cid));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(got, want, "every message once, in order");
    // The directory names the process that has it, with its subscriptions.
    let entry = redis.command(&format!("HGETALL bayou:0:{M}:s:{cid}"));
    assert!(
        entry.contains("s:/users/7") && entry.contains("s:/rooms/*"),
        "{entry}"
    );
    // A disconnect ends it everywhere (its entry goes just after the reply: polled, bounded).
    nodes[0].disconnect(M, &cid);
    let gone = (0..100).any(|_| {
        let exists = redis.command(&format!("EXISTS bayou:0:{M}:s:{cid}"));
        std::thread::sleep(Duration::from_millis(20));
        exists.trim().trim_start_matches(':') == "0"
    });
    assert!(gone, "the directory entry outlived its session");
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn a_websocket_on_another_node_takes_the_session_with_its_queue() {
    let redis = Redis::start();
    let (a, b) = (Node::start(&redis), Node::start(&redis));
    let cid = a.handshake(M);
    a.subscribe(M, &cid, json!("/users/1"));
    // Queued on A while the client is away, then it comes back on B over a WebSocket.
    a.publish(M, "/users/1", json!("while away"));
    b.publish(M, "/users/1", json!("also away"));
    let mut ws = Ws::connect(&b, M);
    ws.send_json(&json!([{"channel": "/meta/connect", "clientId": cid,
                          "connectionType": "websocket", "id": "c1"}]));
    let mut got = Vec::new();
    let mut connected = false;
    let read = |ws: &mut Ws, got: &mut Vec<String>, connected: &mut bool| {
        for m in ws.read_json().as_array().expect("an array") {
            if m["channel"] == "/meta/connect" {
                assert_eq!(m["successful"], true, "{}", m.encode());
                *connected = true;
            } else {
                got.push(m["data"].as_str().unwrap_or("?").to_string());
            }
        }
    };
    while got.len() < 2 || !connected {
        read(&mut ws, &mut got, &mut connected);
    }
    a.publish(M, "/users/1", json!("live"));
    while got.len() < 3 {
        read(&mut ws, &mut got, &mut connected);
    }
    assert_eq!(got, ["while away", "also away", "live"]);
    a.wait_metric(r#"bayou_sessions{mount="/faye"}"#, |v| v == 0.0);
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn a_session_of_a_killed_process_is_adopted_with_what_it_missed() {
    // A dies without a drain (SIGKILL). The client's next request reaches B, which adopts the
    // session under the same clientId (atomically in Redis) and replays the log from A's last
    // checkpoint: what was queued on A and what was published while nobody held the session.
    let redis = Redis::start();
    let (mut a, b) = (Node::start(&redis), Node::start(&redis));
    let cid = a.handshake(M);
    a.subscribe(M, &cid, json!("/users/1"));
    for i in 0..5 {
        b.publish(M, "/users/1", json!(i.to_string()));
    }
    let mut got = Vec::new();
    while got.len() < 5 {
        got.extend(queued(&a, &cid));
    }
    // A connect that finds nothing confirms those five.
    assert!(queued(&a, &cid).is_empty());
    for i in 5..10 {
        b.publish(M, "/users/1", json!(i.to_string()));
    }
    a.wait_metric(r#"bayou_queued_messages{mount="/faye"}"#, |v| v == 5.0);
    // Two more checkpoints: one written after the five were queued.
    let written = a.metric("bayou_backplane_checkpoints_total");
    a.wait_metric("bayou_backplane_checkpoints_total", |v| v >= written + 2.0);
    a.server.signal("KILL");
    let _ = a.server.wait_exit(Duration::from_secs(10));
    for i in 10..15 {
        b.publish(M, "/users/1", json!(i.to_string()));
    }
    // B adopts it (once A's liveness key has expired) and replays from A's checkpoint.
    let after = collect(&b, &cid, 10);
    let want: Vec<String> = (5..15).map(|i| i.to_string()).collect();
    assert_eq!(
        after, want,
        "what A had queued, then what came meanwhile, once each"
    );
    let adopted = r#"bayou_backplane_session_moves_total{outcome="adopted"}"#;
    assert_eq!(b.metric(adopted), 1.0);
    // B owns it now: a publish reaches it directly.
    b.publish(M, "/users/1", json!("15"));
    assert_eq!(data_of(&b.deliveries(M, &cid, 1)), ["15"]);
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn a_session_left_when_a_drain_ends_is_taken_whole_by_the_next_process() {
    // A drains (SIGTERM) and the client does not come back within the window: A leaves the
    // session in the directory with its queue and its log position. The client's next
    // request reaches B, which takes it as a move, not as a crash adoption: what A had
    // queued, then what came after A left, each once.
    let redis = Redis::start();
    let mut a = Node::start_with(&redis, &["--drain-secs", "2"]);
    let b = Node::start(&redis);
    let cid = a.handshake(M);
    a.subscribe(M, &cid, json!("/users/1"));
    // Two delivered and confirmed, so a replay from A's checkpoint would not be this.
    b.publish(M, "/users/1", json!("a"));
    b.publish(M, "/users/1", json!("b"));
    let mut first = Vec::new();
    while first.len() < 2 {
        first.extend(queued(&a, &cid));
    }
    assert!(queued(&a, &cid).is_empty());
    for i in 0..5 {
        b.publish(M, "/users/1", json!(i.to_string()));
    }
    a.wait_metric(r#"bayou_queued_messages{mount="/faye"}"#, |v| v == 5.0);
    a.server.signal("TERM");
    assert_eq!(a.server.wait_exit(Duration::from_secs(10)), Some(0));
    let log = a.server.stderr_with("left in the directory");
    assert!(!log.contains("still open"), "{log}");
    for i in 5..10 {
        b.publish(M, "/users/1", json!(i.to_string()));
    }
    let after = collect(&b, &cid, 10);
    let want: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(
        after, want,
        "what A had queued, then what came after, once each"
    );
    let moves = |o: &str| {
        b.metric(&format!(
            r#"bayou_backplane_session_moves_total{{outcome="{o}"}}"#
        ))
    };
    assert_eq!(moves("unparked"), 1.0);
    assert_eq!(moves("adopted"), 0.0);
    // B owns it now: a publish reaches it directly.
    b.publish(M, "/users/1", json!("10"));
    assert_eq!(data_of(&b.deliveries(M, &cid, 1)), ["10"]);
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn through_a_redis_restart_a_session_keeps_its_client_id_and_what_was_queued() {
    // Redis restarts empty (no persistence), as a replaced cache node does. While it is down,
    // a connect reaching a process that does not hold the session is told to retry, not to
    // handshake again; once Redis is back each process writes its sessions to the directory
    // again, so the session moves as before, with what was queued meanwhile.
    let mut redis = Redis::start();
    let port = redis.port;
    let a = Node::start_with(&redis, &["--handshake-rate", "0"]);
    let b = Node::start(&redis);
    let cid = a.handshake(M);
    a.subscribe(M, &cid, json!("/users/1"));
    // More sessions than one round trip writes back, so the write-back goes in several.
    const OTHERS: usize = 1200;
    for _ in 0..OTHERS {
        a.handshake(M);
    }
    redis.kill();
    a.wait_metric("bayou_backplane_up", |v| v == 0.0);
    b.wait_metric("bayou_backplane_up", |v| v == 0.0);
    let connect = json!([{"channel": "/meta/connect", "clientId": cid,
                          "connectionType": "long-polling", "id": "c1"}]);
    let reply = b.bayeux(M, &connect);
    assert_eq!(
        reply[0]["successful"].as_bool(),
        Some(false),
        "{}",
        reply.encode()
    );
    assert_eq!(
        reply[0]["advice"]["reconnect"].as_str(),
        Some("retry"),
        "{}",
        reply.encode()
    );
    let error = reply[0]["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        error,
        format!("503:{cid}:Session directory unreachable; retry")
    );
    // Published while Redis is away: A delivers it to its own session.
    a.publish(M, "/users/1", json!("during"));
    a.wait_metric(r#"bayou_queued_messages{mount="/faye"}"#, |v| v == 1.0);

    let _redis = Redis::start_on(port);
    a.wait_metric("bayou_backplane_up", |v| v == 1.0);
    b.wait_metric("bayou_backplane_up", |v| v == 1.0);
    // A has written the session to the (empty) directory again: B's connect moves it.
    let key = format!("bayou:0:{M}:s:{cid}");
    for _ in 0..200 {
        // A bulk string of 16 hex digits (a missing entry reads `$-1`).
        if _redis.command(&format!("HGET {key} o")).starts_with("$16") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every session, not only the first round trip's.
    let mut entries = String::new();
    for _ in 0..200 {
        entries = _redis.command(&format!(
            "EVAL \"return #redis.call('keys', ARGV[1])\" 0 bayou:0:{M}:s:*"
        ));
        if entries.trim() == format!(":{}", OTHERS + 1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        entries.trim(),
        format!(":{}", OTHERS + 1),
        "directory entries after the restart"
    );
    let reply = b.bayeux(
        M,
        &json!([{"channel": "/meta/connect", "clientId": cid,
        "connectionType": "long-polling", "advice": {"timeout": 0}, "id": "c2"}]),
    );
    let (connect, msgs) = split_connect(&reply);
    assert_eq!(
        connect["successful"].as_bool(),
        Some(true),
        "{}",
        reply.encode()
    );
    assert_eq!(data_of(&msgs), ["during"]);
    b.publish(M, "/users/1", json!("after"));
    assert_eq!(queued(&b, &cid), ["after"]);
}

/// Runs openssl (installed by ./test.sh), failing loudly.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): run ./test.sh, which installs it"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn a_tls_redis_with_a_password_carries_the_cluster_and_the_password_is_never_shown() {
    // ElastiCache with in-transit encryption and an AUTH token: rediss:// with a password,
    // here a redis-server with a certificate from a CA the test makes, given to Bayou with
    // --engine-ca-file.
    let dir = std::env::temp_dir().join(format!("bayou-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=bayou test CA",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let tls_port = common::redis::free_port().to_string();
    let _redis = Redis::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &path("srv.pem"),
        "--tls-key-file",
        &path("srv.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "s3cret-token",
    ]);
    let url = format!("rediss://:s3cret-token@127.0.0.1:{tls_port}/0");
    let ca = path("ca.pem");
    let (a, b) = (
        Node::start_url(&url, &["--engine-ca-file", &ca]),
        Node::start_url(&url, &["--engine-ca-file", &ca]),
    );
    a.wait_metric("bayou_backplane_up", |v| v == 1.0);
    b.wait_metric("bayou_backplane_up", |v| v == 1.0);
    let on_b = subscriber(&b, &["/secure"]);
    a.publish(M, "/secure", json!("over TLS"));
    node_gets(&b, &on_b, &["over TLS"]);
    let logs = a.stderr_with(&format!("rediss://127.0.0.1:{tls_port}/0"));
    assert!(!logs.contains("s3cret-token"), "{logs}");

    // The wrong password, or no CA for a private certificate: never up, said once, and the
    // password still not shown.
    let wrong = format!("rediss://:not-the-token@127.0.0.1:{tls_port}/0");
    let c = Node::start_url(&wrong, &["--engine-ca-file", &ca]);
    let d = Node::start_url(&url, &[]);
    for node in [&c, &d] {
        let mut said = String::new();
        for _ in 0..200 {
            said = node.stderr_text();
            if said.contains("redis backplane unreachable") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(said.contains("redis backplane unreachable"), "{said}");
        assert!(!said.contains("token"), "{said}");
        assert_eq!(node.metric("bayou_backplane_up"), 0.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens an EventSource stream for `cid` on `node`, read past its head.
fn event_stream(node: &Node, cid: &str) -> Conn {
    common::eventsource::open(node.conn(), M, cid).0
}

/// The data of the next `data:` event of a stream.
fn next_event_data(conn: &mut Conn) -> String {
    let msgs = common::eventsource::next_event(conn);
    msgs[0]["data"].as_str().unwrap_or("?").to_string()
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn an_eventsource_session_stays_with_its_stream_and_its_other_requests_are_relayed() {
    // The browser's EventSource transport: the stream on one process, connects and
    // subscribes by XHR through the balancer to any process. The session moves to the
    // stream, and then stays there: requests reaching the other process are answered by the
    // stream's process (moving the session would cut the stream, and the next request would
    // move it back).
    let redis = Redis::start();
    let (a, b) = (Node::start(&redis), Node::start(&redis));
    let cid = a.handshake(M);
    a.subscribe(M, &cid, json!("/users/1"));
    let mut stream = event_stream(&b, &cid);
    // The stream took the session to B.
    b.wait_metric(
        r#"bayou_backplane_session_moves_total{outcome="in"}"#,
        |v| v == 1.0,
    );
    a.publish(M, "/users/1", json!("one"));
    assert_eq!(next_event_data(&mut stream), "one");
    // The client's heartbeat connect and a new subscribe, by XHR to A: answered by B.
    let connect = json!([{"channel": "/meta/connect", "clientId": cid,
                          "connectionType": "eventsource", "id": "c1"}]);
    let reply = a.bayeux(M, &connect);
    assert_eq!(
        reply[0]["successful"].as_bool(),
        Some(true),
        "{}",
        reply.encode()
    );
    let sub = json!([{"channel": "/meta/subscribe", "clientId": cid,
                      "subscription": "/users/2", "id": "s1"}]);
    let reply = a.bayeux(M, &sub);
    assert_eq!(
        reply[0]["successful"].as_bool(),
        Some(true),
        "{}",
        reply.encode()
    );
    assert_eq!(reply[0]["subscription"].as_str(), Some("/users/2"));
    // The stream is still open and delivers both channels, each message once.
    a.publish(M, "/users/2", json!("two"));
    b.publish(M, "/users/1", json!("three"));
    assert_eq!(next_event_data(&mut stream), "two");
    assert_eq!(next_event_data(&mut stream), "three");
    let relayed = r#"bayou_backplane_session_moves_total{outcome="relayed"}"#;
    assert_eq!(a.metric(relayed), 2.0);
    assert_eq!(
        b.metric(r#"bayou_backplane_session_moves_total{outcome="in"}"#),
        1.0
    );
    assert_eq!(
        a.metric(r#"bayou_backplane_session_moves_total{outcome="in"}"#),
        0.0
    );
    // A long-polling connect would be held by the owner: that one moves the session (and
    // ends the stream, as a disconnect would), rather than wait in a relay.
    let lp = queued(&a, &cid);
    assert!(lp.is_empty(), "{lp:?}");
    assert_eq!(
        a.metric(r#"bayou_backplane_session_moves_total{outcome="in"}"#),
        1.0
    );
    // B's stream ends (a read timeout would fail here); what it still carried is comments.
    let rest = String::from_utf8(stream.read_to_eof()).expect("UTF-8");
    assert!(
        rest.split("\r\n\r\n").all(|e| e.is_empty() || e == ":"),
        "{rest:?}"
    );
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn a_queue_that_moved_is_replayed_if_its_new_owner_dies() {
    // The session moves from A to B with five messages queued and not yet sent; B dies
    // before the client collects them. B's checkpoint must still cover them (their position
    // came with the move), so the process that adopts the session replays them.
    let redis = Redis::start();
    let a = Node::start(&redis);
    let mut b = Node::start(&redis);
    let c = Node::start(&redis);
    let cid = a.handshake(M);
    a.subscribe(M, &cid, json!("/users/1"));
    for i in 0..5 {
        c.publish(M, "/users/1", json!(i.to_string()));
    }
    a.wait_metric(r#"bayou_queued_messages{mount="/faye"}"#, |v| v == 5.0);
    // A subscribe on B moves the session there, queue and all, and sends nothing.
    b.subscribe(M, &cid, json!("/users/2"));
    b.wait_metric(r#"bayou_queued_messages{mount="/faye"}"#, |v| v == 5.0);
    let written = b.metric("bayou_backplane_checkpoints_total");
    b.wait_metric("bayou_backplane_checkpoints_total", |v| v >= written + 2.0);
    b.server.signal("KILL");
    let _ = b.server.wait_exit(Duration::from_secs(10));
    let got = collect(&c, &cid, 5);
    let want: Vec<String> = (0..5).map(|i| i.to_string()).collect();
    assert_eq!(got, want, "the moved queue, replayed once each");
    assert_eq!(
        c.metric(r#"bayou_backplane_session_moves_total{outcome="adopted"}"#),
        1.0
    );
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn two_processes_adopting_one_session_at_once_leave_one_owner() {
    let redis = Redis::start();
    let mut a = Node::start(&redis);
    let (b, c) = (Node::start(&redis), Node::start(&redis));
    let cid = a.handshake(M);
    a.subscribe(M, &cid, json!("/users/2"));
    a.server.signal("KILL");
    let _ = a.server.wait_exit(Duration::from_secs(10));
    // Both ask at once; both requests succeed (the loser asks the winner for it), and the
    // session lives on exactly one process.
    let connect_on = |addr: SocketAddr, id: &str| {
        let body = connect_msg(&cid, id).encode();
        let raw = build_request(
            "POST",
            M,
            &[("Host", "x"), ("Content-Type", "application/json")],
            body.as_bytes(),
        );
        let mut conn = Conn::open(addr);
        conn.send(&raw);
        conn.read_response().json()
    };
    let (addr_b, addr_c) = (b.addr, c.addr);
    let (rb, rc) = std::thread::scope(|s| {
        let tb = s.spawn(|| connect_on(addr_b, "b"));
        let tc = s.spawn(|| connect_on(addr_c, "c"));
        (tb.join().unwrap(), tc.join().unwrap())
    });
    let ok = |r: &Value| r[0]["successful"].as_bool() == Some(true);
    assert!(ok(&rb) || ok(&rc), "{} {}", rb.encode(), rc.encode());
    let adopted = r#"bayou_backplane_session_moves_total{outcome="adopted"}"#;
    assert_eq!(b.metric(adopted) + c.metric(adopted), 1.0, "adopted once");
    let sessions = r#"bayou_sessions{mount="/faye"}"#;
    b.wait_metric(sessions, |_| true);
    let (nb, nc) = (b.metric(sessions), c.metric(sessions));
    assert_eq!(nb + nc, 1.0, "one owner");
    b.publish(M, "/users/2", json!("x"));
    let owner = if nb == 1.0 { &b } else { &c };
    assert_eq!(data_of(&owner.deliveries(M, &cid, 1)), ["x"]);
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn a_forged_or_ended_client_id_gets_the_rehandshake_advice() {
    let redis = Redis::start();
    let (a, b) = (Node::start(&redis), Node::start(&redis));
    let ended = a.handshake(M);
    a.disconnect(M, &ended);
    let forged = "0".repeat(ended.len());
    for cid in [ended.as_str(), forged.as_str(), "short"] {
        let unknown = format!("401:{cid}:Unknown client");
        let reply = b.bayeux(M, &connect_msg(cid, "c"));
        assert_json_eq(
            &reply,
            &json!([{"id": "c", "channel": "/meta/connect", "successful": false,
                     "error": unknown, "advice": {"reconnect": "handshake"}}]),
        );
        // A subscribe fails the same way (as in Faye, only a connect carries the advice).
        let msg = json!({"channel": "/meta/subscribe", "clientId": cid, "subscription": "/x",
                         "id": "s"});
        let reply = b.bayeux(M, &msg);
        assert_eq!(reply[0]["error"].as_str(), Some(unknown.as_str()));
    }
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn mounts_stay_isolated_across_nodes() {
    let redis = Redis::start();
    let url = redis.url();
    let args = [
        "--mount",
        "/staging/faye",
        "--mount",
        "/production/faye",
        "--timeout",
        "10",
        "--engine",
        &url,
    ];
    let nodes: Vec<Node> = (0..2)
        .map(|_| {
            let server = Server::start(&args);
            let admin = server.admin_addr();
            let node = Node { server, admin };
            node.wait_metric("bayou_backplane_up", |v| v == 1.0);
            node
        })
        .collect();
    let (a, b) = (&nodes[0], &nodes[1]);
    let staging = b.handshake("/staging/faye");
    b.subscribe("/staging/faye", &staging, json!(["/users/1", "/users/*"]));
    let production = b.handshake("/production/faye");
    b.subscribe("/production/faye", &production, json!("/users/1"));
    a.publish("/production/faye", "/users/1", json!("prod"));
    a.publish("/staging/faye", "/users/1", json!("stage"));
    let got = b.deliveries("/staging/faye", &staging, 1);
    assert_eq!(data_of(&got), ["stage"]);
    let got = b.deliveries("/production/faye", &production, 1);
    assert_eq!(data_of(&got), ["prod"]);
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn a_batch_keeps_its_order_though_its_publish_goes_through_the_log() {
    let redis = Redis::start();
    let (a, b) = (Node::start(&redis), Node::start(&redis));
    let watcher = subscriber(&b, &["/room"]);
    // One batch: a publish, then a subscribe to its channel. The publish is answered once it
    // is delivered here from the log, so the subscribe after it does not see it (as with the
    // memory engine, and Faye); the next publish reaches both.
    let cid = a.handshake(M);
    let batch = json!([
        {"channel": "/room", "data": "before", "clientId": cid, "id": "1"},
        {"channel": "/meta/subscribe", "clientId": cid, "subscription": "/room", "id": "2"},
    ]);
    let reply = a.bayeux(M, &batch);
    assert_eq!(
        reply[0]["successful"].as_bool(),
        Some(true),
        "{}",
        reply.encode()
    );
    assert_eq!(
        reply[1]["successful"].as_bool(),
        Some(true),
        "{}",
        reply.encode()
    );
    b.publish(M, "/room", json!("after"));
    node_gets(&b, &watcher, &["after", "before"]);
    node_gets(&a, &cid, &["after"]);
    assert_eq!(queued(&a, &cid), Vec::<String>::new());
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn every_metric_the_grafana_dashboard_queries_is_served() {
    // deploy/grafana-dashboard.json: each expression's metric names must be series that
    // /metrics serves, with the Redis engine so that the backplane's are there too.
    let redis = Redis::start();
    let node = Node::start(&redis);
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana-dashboard.json"),
    )
    .expect("deploy/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let served: std::collections::HashSet<String> = (node.metrics().keys())
        .map(|series| series.split('{').next().unwrap_or_default().to_string())
        .collect();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut names = 0;
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            for name in words.filter(|w| w.starts_with("bayou_")) {
                names += 1;
                assert!(
                    served.contains(name),
                    "panel {}: {name} is not served by /metrics",
                    panel["title"]
                );
            }
        }
    }
    assert!(names >= 20, "only {names} metric names in the dashboard");
}

/// A backend for the authorisation hook on a thread: allows everything, keeps each question.
fn allowing_backend() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the backend");
    let port = listener.local_addr().unwrap().port();
    let questions = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = questions.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut out = stream;
                loop {
                    // One keep-alive request after another: head, then Content-Length bytes.
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(q) = serde_json::from_slice(&body) {
                        kept.lock().unwrap().push(q);
                    }
                    let answer = r#"{"allow":true}"#;
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if out.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, questions)
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn a_relayed_request_asks_the_hook_with_the_headers_its_client_sent() {
    // An EventSource session's subscribe reaches the process without the stream, which relays
    // it to the stream's process: that one asks the hook, with the cookie of the request as
    // the client sent it to the other process.
    let (port, questions) = allowing_backend();
    let hook = format!("http://127.0.0.1:{port}/auth");
    let args = ["--auth-hook", &hook, "--auth-hook-headers", "cookie"];
    let redis = Redis::start();
    let (a, b) = (
        Node::start_with(&redis, &args),
        Node::start_with(&redis, &args),
    );
    let cid = a.handshake(M);
    let mut stream = event_stream(&b, &cid);
    b.wait_metric(
        r#"bayou_backplane_session_moves_total{outcome="in"}"#,
        |v| v == 1.0,
    );
    let sub = json!([{"channel": "/meta/subscribe", "clientId": cid,
                      "subscription": "/users/5", "id": "s1"}]);
    let reply = a.post(
        M,
        Some("application/json"),
        sub.encode().as_bytes(),
        &[("Cookie", "session=sess-five")],
    );
    let reply = parse_json(&reply.body);
    assert_eq!(
        reply[0]["successful"].as_bool(),
        Some(true),
        "{}",
        reply.encode()
    );
    assert_eq!(
        a.metric(r#"bayou_backplane_session_moves_total{outcome="relayed"}"#),
        1.0
    );
    // Asked by B, the stream's process, with A's request's cookie.
    assert_eq!(
        b.metric(r#"bayou_auth_hook_allowed_total{mount="/faye"}"#),
        1.0
    );
    assert_eq!(
        a.metric(r#"bayou_auth_hook_allowed_total{mount="/faye"}"#),
        1.0,
        "A's handshake"
    );
    let asked = questions.lock().unwrap().clone();
    let subscribe: Vec<_> = asked
        .iter()
        .filter(|q| q["channel"] == "/meta/subscribe")
        .collect();
    assert_eq!(subscribe.len(), 1, "{asked:?}");
    assert_eq!(subscribe[0]["headers"]["cookie"], "session=sess-five");
    assert_eq!(subscribe[0]["clientId"], cid.as_str());
    a.publish(M, "/users/5", json!("five"));
    assert_eq!(next_event_data(&mut stream), "five");
}

#[test]
#[ignore = "cluster suite: ./test.sh runs it once with --ignored (needs redis-server)"]
fn presence_counts_the_clients_of_every_process() {
    // /api/presence on one process asks the others through their inboxes: the count is the
    // cluster's, and the answer says how many processes there are and how many answered.
    let redis = Redis::start();
    let nodes = [
        Node::start(&redis),
        Node::start(&redis),
        Node::start(&redis),
    ];
    let mut want = 0;
    for (i, node) in nodes.iter().enumerate() {
        for _ in 0..=i {
            let cid = node.handshake(M);
            node.subscribe(M, &cid, json!("/users/42"));
            want += 1;
        }
    }
    let wild = nodes[2].handshake(M);
    nodes[2].subscribe(M, &wild, json!("/users/*"));
    want += 1;
    let presence = |node: &Node, channel: &str| {
        let mut conn = Conn::open(node.admin);
        let req = format!("GET /api/presence?channel={channel} HTTP/1.1\r\nHost: x\r\n\r\n");
        conn.send(req.as_bytes());
        let resp = conn.read_response();
        assert_eq!(resp.status, 200, "{}", resp.text());
        parse_json(&resp.body)
    };
    // Each process counts itself among the live ones once its heartbeat is in.
    for node in &nodes {
        node.wait_metric("bayou_backplane_processes", |v| v == 3.0);
    }
    for node in &nodes {
        let v = presence(node, "/users/42");
        assert_eq!(v["scope"].as_str(), Some("cluster"), "{}", v.encode());
        assert_eq!(v["processes"].as_u64(), Some(3), "{}", v.encode());
        assert_eq!(v["answered"].as_u64(), Some(3), "{}", v.encode());
        assert_eq!(v["clients"].as_u64(), Some(want), "{}", v.encode());
        assert_eq!(presence(node, "/users/7")["clients"].as_u64(), Some(1));
    }
}
