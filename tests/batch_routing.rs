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

/// A client that is one of several named in a batch, alone on its worker.
fn three_clients(s: &Server) -> (String, String, String) {
    let (a, b) = two_clients_on_different_workers(s);
    (a, b, s.handshake(M))
}

/// Found by the differential test (tests/node/differential.test.mjs): a `1`, `"x"` or `[]`
/// among the messages of a batch naming several workers' sessions is a message with its reply,
/// not a reason to refuse the whole body.
#[test]
fn non_objects_in_a_split_batch_get_their_replies() {
    let s = server();
    let (a, b) = two_clients_on_different_workers(&s);
    let body = json!([
        {"channel": "/meta/subscribe", "clientId": a, "subscription": "/a", "id": "1"},
        1, "text", [], null, true,
        {"channel": "/meta/subscribe", "clientId": b, "subscription": "/b", "id": "2"},
    ]);
    for reply in post_from_every_worker(&s, &body, 6) {
        let items = reply.as_array().expect("a reply array, not a refusal");
        assert_eq!(items.len(), 6, "{}", reply.encode());
        let error = |r: &&Value| r.get("error").and_then(|e| e.as_str()).map(str::to_owned);
        let missing = items
            .iter()
            .filter(|r| error(r).as_deref() == Some("402:data:Missing required parameter"));
        assert_eq!(missing.count(), 4, "{}", reply.encode());
        let subscribed = items
            .iter()
            .filter(|r| r.get("id").is_some() && r["successful"] == true);
        assert_eq!(subscribed.count(), 2, "{}", reply.encode());
    }
}

/// A connect and a disconnect of one client in one batch: Faye hands the connect what was
/// queued when it is processed, then ends the session; the connect succeeds with it.
#[test]
fn a_connect_then_a_disconnect_in_one_batch_takes_the_queue() {
    let s = server();
    for split in [false, true] {
        let (a, b) = two_clients_on_different_workers(&s);
        s.subscribe(M, &a, json!("/q"));
        s.publish(M, "/q", json!({"n": 1}));
        let mut body = vec![
            connect_now(&a, "1"),
            json!({"channel": "/meta/disconnect", "clientId": a, "id": "2"}),
        ];
        if split {
            body.insert(1, json!({"channel": "/meta/subscribe", "clientId": b, "subscription": "/z", "id": "3"}));
        }
        let reply = s.bayeux(M, &Value::from(body));
        let items = reply.as_array().expect("reply array");
        let connect = items
            .iter()
            .find(|r| r["channel"] == "/meta/connect")
            .expect("connect reply");
        assert_eq!(connect["successful"], true, "{}", reply.encode());
        let delivered: Vec<_> = items.iter().filter(|r| r["channel"] == "/q").collect();
        assert_eq!(delivered.len(), 1, "split {split}: {}", reply.encode());
        assert_eq!(delivered[0]["data"], json!({"n": 1}));
    }
}

/// A publish before a subscribe in the same batch is not delivered to that subscription, and a
/// publish before an unsubscribe is: each message runs as if it came alone, in order, even when
/// the channel's owner is another worker.
#[test]
fn a_batch_publishes_before_it_subscribes_in_request_order() {
    let s = server();
    for (n, channel) in ["/o/1", "/o/2", "/o/3", "/o/4", "/o/5", "/o/6"]
        .iter()
        .enumerate()
    {
        let a = s.handshake(M);
        let n = n as i64;
        let body = json!([
            {"channel": channel, "data": {"before": n}},
            {"channel": "/meta/subscribe", "clientId": a, "subscription": channel},
            {"channel": channel, "data": {"after": n}},
            {"channel": "/meta/unsubscribe", "clientId": a, "subscription": channel},
        ]);
        let reply = s.bayeux(M, &body);
        assert_eq!(
            reply.as_array().map(|r| r.len()),
            Some(4),
            "{}",
            reply.encode()
        );
        let got = s.deliveries(M, &a, 1);
        assert_eq!(got[0]["data"], json!({"after": n}), "{channel}");
    }
}

/// Of a repeated key the last counts, as `JSON.parse` (and so Faye) reads it; the router and
/// the processing agree on it.
#[test]
fn a_repeated_key_counts_where_it_last_appears() {
    let s = server();
    let reply = json_reply(&s.post_json(M, r#"[{"channel":"/b","channel":"/a","data":1}]"#));
    assert_json_eq(&reply, &json!([{"channel": "/a", "successful": true}]));
    let (a, b, _) = three_clients(&s);
    let body = format!(
        r#"[{{"channel":"/meta/subscribe","clientId":"{b}","clientId":"{a}","subscription":"/r","id":"1"}}]"#
    );
    for _ in 0..6 {
        let reply = json_reply(&s.post_json(M, &body));
        let expected = json!([{"id": "1", "clientId": a, "channel": "/meta/subscribe",
                               "successful": true, "subscription": "/r"}]);
        assert_json_eq(&reply, &expected);
    }
}
