//! Cross-worker paths (issue: thread-per-core shards). Every server here runs four workers, more
//! than this machine's cores, so sessions, channel owners and connections land on different
//! workers; the clientId names the session's worker and `owner` names each channel's.

mod common;

use bayou::bayeux::id::worker_of;
use bayou::shard::owner;
use common::*;

const M: &str = "/faye";
const WORKERS: usize = 4;

fn server() -> Server {
    Server::start(&["--mount", M, "--timeout", "2", "--workers", "4"])
}

/// A client whose session lives on a worker satisfying `want`.
fn client_on(s: &Server, want: impl Fn(usize) -> bool) -> String {
    for _ in 0..500 {
        let cid = s.handshake(M);
        if worker_of(&cid, WORKERS).is_some_and(&want) {
            return cid;
        }
    }
    panic!("no clientId for the wanted worker in 500 handshakes");
}

fn connect_now(s: &Server, cid: &str) -> Vec<Value> {
    let msg = json!({"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling",
                     "advice": {"timeout": 0}, "id": "c"});
    split_connect(&s.bayeux(M, &msg)).1
}

#[test]
fn publisher_and_subscriber_on_different_workers() {
    if skip_against_faye("worker placement is Bayou's") {
        return;
    }
    let s = server();
    let sub = client_on(&s, |w| w == 0);
    let publisher = client_on(&s, |w| w == 1);
    s.subscribe(M, &sub, json!("/x/y"));
    let reply = s.bayeux(
        M,
        &json!({"channel": "/x/y", "data": 1, "clientId": publisher}),
    );
    assert_json_eq(
        &reply,
        &json!([{"clientId": publisher, "channel": "/x/y", "successful": true}]),
    );
    let got = connect_now(&s, &sub);
    assert_json_eq(&Value::from(got), &json!([{"channel": "/x/y", "data": 1}]));
}

#[test]
fn one_copy_through_three_patterns_on_a_non_owner_worker() {
    if skip_against_faye("worker placement is Bayou's") {
        return;
    }
    let s = server();
    let home = owner("/a/b", WORKERS);
    let cid = client_on(&s, |w| w != home);
    s.subscribe(M, &cid, json!(["/a/**", "/a/*", "/a/b"]));
    for n in 0..3 {
        s.publish(M, "/a/b", json!(n));
    }
    s.publish(M, "/a/c", json!("c"));
    let got = s.deliveries(M, &cid, 4);
    let data: Vec<String> = got.iter().map(|m| m["data"].encode()).collect();
    assert_eq!(data, vec!["0", "1", "2", "\"c\""]);
}

#[test]
fn long_polls_of_one_client_over_many_connections() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/lp"));
    let mut seen = Vec::new();
    // Each round is a fresh TCP connection, so SO_REUSEPORT spreads them over the workers.
    for round in 0..12 {
        s.publish(M, "/lp", json!(round));
        let mut conn = s.conn();
        let body =
            json!([{"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling",
                           "advice": {"timeout": 0}, "id": format!("c{round}")}])
            .encode();
        conn.send(&build_request(
            "POST",
            M,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ));
        let (_, msgs) = split_connect(&json_reply(&conn.read_response()));
        seen.extend(msgs.iter().map(|m| m["data"].encode()));
    }
    let want: Vec<String> = (0..12).map(|n| n.to_string()).collect();
    assert_eq!(seen, want, "every message once, in publish order");
}

#[test]
fn a_thousand_clients_over_four_workers_each_get_their_own_message_once() {
    // A thousand handshakes from one address: above the default per-address burst.
    let s = Server::start(&[
        "--mount",
        M,
        "--timeout",
        "2",
        "--workers",
        "4",
        "--handshake-rate",
        "0",
    ]);
    let clients: Vec<String> = (0..1000).map(|_| s.handshake(M)).collect();
    for (i, cid) in clients.iter().enumerate() {
        s.subscribe(M, cid, json!(format!("/user/{i}")));
    }
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({"channel": format!("/user/{i}"), "data": i}))
        .collect();
    let reply = s.bayeux(M, &Value::from(batch));
    assert_eq!(reply.as_array().map(Vec::len), Some(1000));
    for (i, cid) in clients.iter().enumerate() {
        let got = connect_now(&s, cid);
        assert_json_eq(
            &Value::from(got),
            &json!([{"channel": format!("/user/{i}"), "data": i}]),
        );
    }
}

#[test]
fn publish_order_holds_across_workers() {
    let s = server();
    let subs: Vec<String> = (0..8).map(|_| s.handshake(M)).collect();
    for cid in &subs {
        s.subscribe(M, cid, json!("/order"));
    }
    let mut conn = s.conn();
    for n in 0..50 {
        let body = json!({"channel": "/order", "data": n}).encode();
        conn.send(&build_request(
            "POST",
            M,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ));
        assert_eq!(conn.read_response().status, 200);
    }
    for cid in &subs {
        let got = s.deliveries(M, cid, 50);
        let data: Vec<i64> = got.iter().filter_map(|m| m["data"].as_i64()).collect();
        assert_eq!(data, (0..50).collect::<Vec<_>>());
    }
}

#[test]
fn abandoned_long_poll_and_jsonp_requests_harm_nobody() {
    let s = Server::start(&["--mount", M, "--timeout", "30"]);
    let victim = s.handshake(M);
    s.subscribe(M, &victim, json!("/gone"));
    // A held long-poll connect and a held JSON-P connect, each closed by the client mid-hold.
    for jsonp in [false, true] {
        let connect = json!([{"channel": "/meta/connect", "clientId": victim, "connectionType": "long-polling", "id": "c"}]).encode();
        let mut conn = s.conn();
        let request = if jsonp {
            build_request(
                "GET",
                &format!("{M}?message={}&jsonp=cb", urlencode(&connect)),
                &[],
                b"",
            )
        } else {
            build_request(
                "POST",
                M,
                &[("Content-Type", "application/json")],
                connect.as_bytes(),
            )
        };
        conn.send(&request);
        drop(conn);
        // The held reply now has nowhere to go; a delivery wakes it and it is written to a dead socket.
        s.publish(M, "/gone", json!("into the void"));
    }
    // Everyone else is served as before, on every worker.
    let other = s.handshake(M);
    s.subscribe(M, &other, json!("/alive"));
    s.publish(M, "/alive", json!(1));
    assert_json_eq(
        &Value::from(connect_now(&s, &other)),
        &json!([{"channel": "/alive", "data": 1}]),
    );
    assert_json_eq(&s.bayeux(M, &json!([])), &json!([]));
}

/// Every mesh queue holds one envelope, so publishes, deliveries and interest between workers
/// meet full queues and wait for room (issue 16, item 7): nothing is lost, nothing doubled, and
/// each publisher's messages keep their order, while the back-pressure counter shows the full
/// path ran.
#[test]
fn a_full_mesh_slows_publishers_and_loses_nothing() {
    if skip_against_faye("the mesh is Bayou's") {
        return;
    }
    let s = Server::start(&[
        "--mount",
        M,
        "--timeout",
        "2",
        "--handshake-rate",
        "0",
        "--mesh-capacity",
        "1",
    ]);
    let admin = s.admin_addr();
    let subs: Vec<String> = (0..12).map(|_| s.handshake(M)).collect();
    for (i, cid) in subs.iter().enumerate() {
        s.subscribe(M, cid, json!(["/full", format!("/full/{i}")]));
    }
    const PUBLISHERS: usize = 4;
    const BATCHES: usize = 10;
    const PER_BATCH: usize = 20;
    std::thread::scope(|scope| {
        for p in 0..PUBLISHERS {
            let addr = s.addr;
            scope.spawn(move || {
                for b in 0..BATCHES {
                    // One channel every subscriber shares, and one per subscriber: fan-out and
                    // single deliveries, owned by different workers.
                    let batch: Vec<Value> = (0..PER_BATCH)
                        .map(|i| {
                            let n = b * PER_BATCH + i;
                            json!({"channel": "/full", "data": {"p": p, "n": n}})
                        })
                        .collect();
                    let body = Value::from(batch).encode();
                    let mut conn = Conn::open(addr);
                    let headers = [("Content-Type", "application/json")];
                    conn.send(&build_request("POST", M, &headers, body.as_bytes()));
                    let reply = json_reply(&conn.read_response());
                    let replies = reply.as_array().expect("replies");
                    assert_eq!(replies.len(), PER_BATCH);
                    assert!(
                        replies
                            .iter()
                            .all(|r| r["successful"].as_bool() == Some(true))
                    );
                }
            });
        }
    });
    let total = PUBLISHERS * BATCHES * PER_BATCH;
    for cid in &subs {
        let got = s.deliveries(M, cid, total);
        let mut next = [0u64; PUBLISHERS];
        for m in &got {
            let p = m["data"]["p"].as_u64().expect("p") as usize;
            let n = m["data"]["n"].as_u64().expect("n");
            assert_eq!(n, next[p], "publisher {p}'s messages out of order or lost");
            next[p] += 1;
        }
    }
    let metrics = scrape_metrics(admin);
    let waited = metrics["bayou_mesh_backpressure_total"];
    assert!(
        waited > 0.0,
        "no envelope met a full queue: the test did not reach the full path"
    );
}
