//! Each message of a batch is answered as if it had come alone, whichever worker the request's
//! connection landed on and whichever workers its messages' sessions live on (issue 16, items 1
//! and 5). Against Faye (`BAYOU_TEST_SERVER=faye`) the same batches get the same replies.

mod common;

use bayou::bayeux::id::worker_of;
use common::*;

const M: &str = "/faye";

fn workers() -> usize {
    std::env::var("BAYOU_TEST_WORKERS").map_or(2, |w| w.parse().expect("BAYOU_TEST_WORKERS"))
}

fn server() -> Server {
    Server::start(&["--mount", M, "--timeout", "2", "--handshake-rate", "0"])
}

/// Two live clients whose sessions are on different workers (any two against Faye).
fn two_clients_on_different_workers(s: &Server) -> (String, String) {
    let a = s.handshake(M);
    for _ in 0..500 {
        let b = s.handshake(M);
        if faye_mode() || worker_of(&a, workers()) != worker_of(&b, workers()) {
            return (a, b);
        }
    }
    panic!("no two clients on different workers in 500 handshakes");
}

/// POSTs `body` on a fresh connection `n` times (so the connections land on every worker) and
/// returns each reply.
fn post_from_every_worker(s: &Server, body: &Value, n: usize) -> Vec<Value> {
    (0..n).map(|_| s.bayeux(M, body)).collect()
}

fn connect_now(cid: &str, id: &str) -> Value {
    json!({"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling",
           "advice": {"timeout": 0}, "id": id})
}

#[test]
fn a_client_id_inside_data_does_not_route_the_batch() {
    let s = server();
    let (a, b) = two_clients_on_different_workers(&s);
    // The Faye client writes `data` before `clientId`.
    let body = json!([
        {"channel": "/x", "data": {"clientId": b}, "clientId": a, "id": "1"},
        connect_now(&a, "2"),
    ]);
    for reply in post_from_every_worker(&s, &body, 8) {
        let items = reply.as_array().expect("reply array");
        assert_eq!(items.len(), 2, "{}", reply.encode());
        assert_json_eq(
            &items[0],
            &json!({"id": "1", "clientId": a, "channel": "/x", "successful": true}),
        );
        assert_eq!(items[1]["channel"], "/meta/connect");
        assert_eq!(
            items[1]["successful"].as_bool(),
            Some(true),
            "the connect of a live client: {}",
            reply.encode()
        );
    }
}

#[test]
fn a_batch_naming_clients_of_several_workers_serves_each() {
    let s = server();
    let (a, b) = two_clients_on_different_workers(&s);
    // A wrong clientId first, then two live clients on different workers.
    let body = json!([
        {"channel": "/meta/subscribe", "clientId": "nosuchclient", "subscription": "/s", "id": "0"},
        {"channel": "/meta/subscribe", "clientId": b, "subscription": "/b", "id": "1"},
        {"channel": "/meta/subscribe", "clientId": a, "subscription": "/a", "id": "2"},
        connect_now(&a, "3"),
        {"channel": "/b", "data": "to b", "id": "4"},
    ]);
    let reply = s.bayeux(M, &body);
    let items = reply.as_array().expect("reply array");
    assert_eq!(items.len(), 5, "{}", reply.encode());
    assert_json_eq(
        &items[0],
        &json!({"id": "0", "clientId": "nosuchclient", "channel": "/meta/subscribe",
                "successful": false, "error": "401:nosuchclient:Unknown client",
                "subscription": "/s"}),
    );
    assert_json_eq(
        &items[1],
        &json!({"id": "1", "clientId": b, "channel": "/meta/subscribe", "successful": true,
                "subscription": "/b"}),
    );
    assert_json_eq(
        &items[2],
        &json!({"id": "2", "clientId": a, "channel": "/meta/subscribe", "successful": true,
                "subscription": "/a"}),
    );
    // The publish runs after b's subscribe, as in one Faye batch; the connect comes last.
    assert_json_eq(
        &items[3],
        &json!({"id": "4", "channel": "/b", "successful": true}),
    );
    assert_eq!(items[4]["id"], "3");
    assert_eq!(items[4]["successful"].as_bool(), Some(true));
    // Both subscriptions took effect on their own sessions.
    let got = s.bayeux(M, &connect_now(&b, "5"));
    let (_, msgs) = split_connect(&got);
    assert_json_eq(
        &Value::from(msgs),
        &json!([{"channel": "/b", "data": "to b", "id": "4"}]),
    );
    s.publish(M, "/a", json!("to a"));
    let (_, msgs) = split_connect(&s.bayeux(M, &connect_now(&a, "6")));
    assert_json_eq(
        &Value::from(msgs),
        &json!([{"channel": "/a", "data": "to a"}]),
    );
}

#[test]
fn a_refused_batch_reads_the_same_on_every_worker() {
    if skip_against_faye("Bayou's max_batch limit") {
        return;
    }
    let s = Server::start(&["--mount", M, "--max-batch", "3", "--handshake-rate", "0"]);
    let (a, b) = two_clients_on_different_workers(&s);
    for cid in [&a, &b] {
        let body: Vec<Value> = (0..4).map(|i| connect_now(cid, &i.to_string())).collect();
        for _ in 0..8 {
            let resp = s.post_json(M, &Value::from(body.clone()).encode());
            assert_eq!(resp.status, 400);
            assert_eq!(resp.text(), "Too many messages in one request");
        }
    }
    // Split across workers, the whole batch is refused before any of it runs.
    let mixed = json!([
        connect_now(&a, "1"),
        connect_now(&b, "2"),
        connect_now(&a, "3"),
        connect_now(&b, "4")
    ]);
    let resp = s.post_json(M, &mixed.encode());
    assert_eq!(resp.status, 400);
    assert_eq!(resp.text(), "Too many messages in one request");
}

#[test]
fn a_null_channel_is_an_invalid_channel_with_no_name() {
    let s = server();
    let reply = s.bayeux(M, &json!({"channel": null, "data": 1}));
    assert_json_eq(
        &reply,
        &json!([{"successful": false, "error": "405::Invalid channel"}]),
    );
}
