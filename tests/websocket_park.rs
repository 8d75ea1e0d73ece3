//! Idle WebSockets park without a task (src/transport/ws/), and the two safety features of
//! the same code: closing sockets that stop answering pings, and cutting slow consumers. The
//! server's metrics say when sockets have parked; nothing here asserts a duration.

mod common;

use common::ws::{FIN, OP_CONT, OP_TEXT, frame};
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

const M: &str = "/faye";

/// Polls /metrics until `series` has `value` (bounded: fails after about 30 s).
#[track_caller]
fn wait_metric(admin: SocketAddr, series: &str, value: f64) {
    for _ in 0..600 {
        if scrape_metrics(admin).get(series) == Some(&value) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{series} never reached {value}: {:?}",
        scrape_metrics(admin)
    );
}

/// A WebSocket client: handshake, a connect held for the server's 30 s timeout, subscribe.
fn subscriber(s: &Server, channel: &str) -> (String, Ws) {
    let mut ws = Ws::connect(s, M);
    ws.send_json(&json!([handshake_msg("1")]));
    let cid = ws.read_json()[0]["clientId"]
        .as_str()
        .expect("clientId")
        .to_string();
    ws.send_json(&json!([{"channel": "/meta/connect", "clientId": cid, "connectionType": "websocket", "id": "2"}]));
    ws.send_json(&json!([sub_msg("/meta/subscribe", &cid, json!(channel))]));
    let reply = ws.read_json();
    assert_eq!(reply[0]["successful"].as_bool(), Some(true), "{reply:?}");
    (cid, ws)
}

fn data_of(frame: &Value) -> String {
    frame[0]["data"]["n"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn many_parked_clients_each_get_a_publish_exactly_once() {
    if skip_against_faye("parking is Bayou's") {
        return;
    }
    let s = Server::start(&["--mount", M, "--timeout", "30"]);
    let admin = s.admin_addr();
    let mut clients: Vec<Ws> = (0..200).map(|_| subscriber(&s, "/all").1).collect();
    wait_metric(admin, "bayou_websockets_parked", 200.0);

    s.publish(M, "/all", json!({"n": "first"}));
    s.publish(M, "/all", json!({"n": "second"}));
    // Each socket gets the first message once: the next frame is already the second one.
    for ws in &mut clients {
        assert_eq!(data_of(&ws.read_json()), "first");
        assert_eq!(data_of(&ws.read_json()), "second");
    }
    // Written by non-blocking sends, the deliveries left every socket parked.
    wait_metric(admin, "bayou_websockets_parked", 200.0);
}

/// How many times parked sockets were given their tasks back.
fn resumes(admin: SocketAddr) -> f64 {
    scrape_metrics(admin)["bayou_websocket_resumes_total"]
}

#[test]
fn a_parked_socket_runs_whole_messages_alone_and_resumes_for_part_of_one() {
    if skip_against_faye("parking is Bayou's") {
        return;
    }
    let s = Server::start(&["--mount", M, "--timeout", "30"]);
    let admin = s.admin_addr();
    let (cid, mut ws) = subscriber(&s, "/a");
    wait_metric(admin, "bayou_websockets_parked", 1.0);
    let before = resumes(admin);

    // Whole messages, a ping and a publish are run and answered while the socket stays parked.
    ws.send_json(&json!([sub_msg("/meta/subscribe", &cid, json!("/b"))]));
    assert_json_eq(
        &ws.read_json(),
        &sub_reply("/meta/subscribe", &cid, json!("/b"), None),
    );
    ws.send_frame(0x9, b"p");
    assert_eq!(ws.read_frame(), Frame::Pong(b"p".to_vec()));
    s.publish(M, "/b", json!({"n": "b"}));
    assert_eq!(data_of(&ws.read_json()), "b");
    assert_eq!(resumes(admin), before, "no task was needed");

    // Part of a frame: the socket resumes with the bytes read so far, and nothing is lost.
    let text = json!([sub_msg("/meta/subscribe", &cid, json!("/c"))]).encode();
    let whole = frame(FIN | OP_TEXT, text.as_bytes(), true);
    ws.send_raw(&whole[..9]);
    wait_metric(admin, "bayou_websocket_resumes_total", before + 1.0);
    ws.send_raw(&whole[9..]);
    assert_json_eq(
        &ws.read_json(),
        &sub_reply("/meta/subscribe", &cid, json!("/c"), None),
    );
    wait_metric(admin, "bayou_websockets_parked", 1.0);

    // The first fragment of a message: the socket resumes with the decoder holding it.
    let text = json!([sub_msg("/meta/subscribe", &cid, json!("/d"))]).encode();
    let (head, tail) = text.as_bytes().split_at(10);
    ws.send_raw(&frame(OP_TEXT, head, true));
    wait_metric(admin, "bayou_websocket_resumes_total", before + 2.0);
    ws.send_raw(&frame(FIN | OP_CONT, tail, true));
    assert_json_eq(
        &ws.read_json(),
        &sub_reply("/meta/subscribe", &cid, json!("/d"), None),
    );
    wait_metric(admin, "bayou_websockets_parked", 1.0);

    // A close: answered with a close, and the connection ends.
    ws.send_close(1000);
    assert_eq!(ws.read_close(), Some(1000));
    assert!(ws.at_eof(), "the socket closed");
    wait_metric(admin, r#"bayou_connections{transport="websocket"}"#, 0.0);
}

#[test]
fn a_socket_that_never_answers_pings_is_closed() {
    if skip_against_faye("Faye has no ping timeout") {
        return;
    }
    let s = Server::start(&[
        "--mount",
        M,
        "--timeout",
        "30",
        "--ping",
        "0.2",
        "--ping-timeout",
        "2",
    ]);
    let admin = s.admin_addr();
    let (_, mut silent) = subscriber(&s, "/silent");
    let (_, mut polite) = subscriber(&s, "/polite");
    // The polite client answers every ping, on its own thread, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let answering = std::thread::spawn(move || {
        let mut after_stop = 0;
        while after_stop < 3 {
            if let Frame::Ping(payload) = polite.read_frame() {
                polite.send_frame(0xA, &payload);
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    after_stop += 1;
                }
            }
        }
        polite
    });
    // The silent client reads pings but never sends anything: it is closed with 1001.
    assert_eq!(silent.read_close(), Some(1001));
    wait_metric(
        admin,
        r#"bayou_websocket_ping_timeouts_total{mount="/faye"}"#,
        1.0,
    );
    // The polite one is still pinged afterwards, and still open.
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _polite = answering
        .join()
        .expect("the polite client kept being pinged");
    wait_metric(admin, r#"bayou_connections{transport="websocket"}"#, 1.0);
}

/// Publishes `batches` x `per_batch` messages of about 1 KB to `channel` over the HTTP ingest
/// while `reader` (a subscriber of it) reads; asserts it got every one, in order, and gives the
/// reader back (still connected). A batch is published only once the reader has read all but
/// `window` of the batches before it, so what waits for the reader stays under its bound however
/// the threads are scheduled (the other subscribers are not waited for).
fn flood(
    s: &Server,
    channel: &str,
    mut reader: Ws,
    batches: usize,
    per_batch: usize,
    window: usize,
) -> Ws {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let total = batches * per_batch;
    let read = std::sync::Arc::new(AtomicUsize::new(0));
    let progress = read.clone();
    let counter = std::thread::spawn(move || {
        for i in 0..total {
            let frame = reader.read_json();
            assert_eq!(frame[0]["data"]["i"].as_u64(), Some(i as u64), "in order");
            progress.store(i + 1, Ordering::SeqCst);
        }
        reader
    });
    let pad = "x".repeat(1000);
    for b in 0..batches {
        let needed = b.saturating_sub(window) * per_batch;
        let waited = std::time::Instant::now();
        while read.load(Ordering::SeqCst) < needed {
            assert!(
                !counter.is_finished() && waited.elapsed() < std::time::Duration::from_secs(60),
                "the reader stopped after {} of {total} messages",
                read.load(Ordering::SeqCst)
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let batch: Vec<Value> = (0..per_batch)
            .map(|k| json!({"channel": channel, "data": {"i": b * per_batch + k, "pad": pad}}))
            .collect();
        let resp = s.post_json(M, &Value::from(batch).encode());
        assert_eq!(resp.status, 200);
    }
    counter
        .join()
        .expect("the reading client got every message in order throughout the flood")
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value")
}

#[test]
fn a_non_reading_subscriber_is_cut_while_a_reading_one_gets_everything() {
    if skip_against_faye("Faye has no output bound") {
        return;
    }
    const BATCHES: usize = 240;
    const PER_BATCH: usize = 50;
    // Bodies of one batch (about 52 KB) and messages well under the 1 MiB bound, as the
    // bound must exceed any message accepted.
    let s = Server::start(&[
        "--mount",
        M,
        "--timeout",
        "30",
        "--max-pending",
        "1048576",
        "--max-body",
        "65536",
        "--max-message",
        "65536",
    ]);
    let admin = s.admin_addr();
    let (slow_cid, slow) = subscriber(&s, "/flood");
    let (_, reader) = subscriber(&s, "/flood");
    // About 12 MB of deliveries, far more than the slow socket's bound and kernel buffers;
    // the reader is at most 4 batches (200 KB) behind, under its bound of 1 MiB.
    let _reader = flood(&s, "/flood", reader, BATCHES, PER_BATCH, 4);
    wait_metric(
        admin,
        r#"bayou_slow_consumer_disconnects_total{mount="/faye"}"#,
        1.0,
    );
    wait_metric(admin, r#"bayou_connections{transport="websocket"}"#, 1.0);
    let rss_mib = vm_rss_kib(s.pid()) / 1024;
    assert!(rss_mib < 200, "server RSS {rss_mib} MiB after the flood");
    // The cut client's session lives on and queues (boundedly) for its next connect.
    drop(slow);
    s.publish(M, "/flood", json!({"i": "after"}));
    let (_, queued) = split_connect(&s.connect(M, &slow_cid));
    assert!(
        (1..=1000).contains(&queued.len()),
        "{} queued",
        queued.len()
    );
    let last = queued.last().expect("a queued message");
    assert_eq!(last["data"]["i"].as_str(), Some("after"));
}

#[test]
fn a_thousand_non_reading_subscribers_under_load_keep_memory_bounded() {
    if skip_against_faye("Faye has no output bound") {
        return;
    }
    const CLIENTS: usize = 1000;
    const BATCHES: usize = 12;
    const PER_BATCH: usize = 50;
    let s = Server::start(&[
        "--mount",
        M,
        "--timeout",
        "30",
        "--max-pending",
        "65536",
        // One batch's body (about 52 KB) fits, and fits the bound once framed.
        "--max-body",
        "60000",
        "--max-message",
        "16384",
        "--handshake-rate",
        "0",
        "--max-clients-per-ip",
        "0",
    ]);
    let admin = s.admin_addr();
    // Stalled clients: subscribed, then they never read again.
    let stalled: Vec<Ws> = (0..CLIENTS).map(|_| subscriber(&s, "/storm").1).collect();
    let (_, reader) = subscriber(&s, "/storm");
    // 600 KB of deliveries per client: far beyond each stalled socket's bound and buffers.
    // The reader has read everything before each batch: one batch (50 KB) waits for it at
    // most, under its bound of 64 KiB.
    let _reader = flood(&s, "/storm", reader, BATCHES, PER_BATCH, 0);
    // Every publish reached every socket's outbox: written, or cut over the bound.
    wait_metric(
        admin,
        r#"bayou_deliveries_total{mount="/faye"}"#,
        ((CLIENTS + 1) * BATCHES * PER_BATCH) as f64,
    );
    let rss_mib = vm_rss_kib(s.pid()) / 1024;
    // What the kernel's socket buffers do not take, each stalled socket holds up to its 64 KiB
    // bound (then it is cut): 1,000 of them stay far below this.
    assert!(
        rss_mib < 300,
        "server RSS {rss_mib} MiB with 1,000 stalled subscribers"
    );
    drop(stalled);
}

/// A subscriber that stops reading is cut as a slow consumer; what its socket had queued and
/// never wrote goes back to its session, so the client, reconnecting with its clientId, gets
/// every message in order (issue 16, item 4). At most the one write in flight at the cut
/// (64 KiB of frames) can be lost.
#[test]
fn a_cut_slow_consumer_gets_what_it_was_never_sent_on_its_next_connect() {
    if skip_against_faye("Faye has no output bound") {
        return;
    }
    let s = Server::start(&[
        "--mount",
        M,
        "--timeout",
        "30",
        "--max-pending",
        "262144",
        "--max-body",
        "65536",
        "--max-message",
        "65536",
    ]);
    let admin = s.admin_addr();
    let (cid, mut slow) = subscriber(&s, "/slow");
    let cut = r#"bayou_slow_consumer_disconnects_total{mount="/faye"}"#;
    let pad = "x".repeat(1000);
    let mut published = 0u64;
    // Publish until the socket is cut, then one batch more (it goes to the session's queue).
    let mut after_cut = false;
    for _ in 0..2000 {
        let batch: Vec<Value> = (published..published + 10)
            .map(|i| json!({"channel": "/slow", "data": {"i": i, "pad": pad}}))
            .collect();
        assert_eq!(s.post_json(M, &Value::from(batch).encode()).status, 200);
        published += 10;
        if after_cut {
            break;
        }
        after_cut = scrape_metrics(admin).get(cut) == Some(&1.0);
    }
    assert!(after_cut, "the subscriber was never cut");
    // What reached the client before the cut: a run from the start, in order.
    let seen: Vec<u64> = (slow.texts_until_eof().iter())
        .map(|t| parse_json(t.as_bytes()))
        .filter_map(|f| f[0]["data"]["i"].as_u64())
        .collect();
    assert_eq!(seen, (0..seen.len() as u64).collect::<Vec<_>>(), "in order");
    // The rest comes from the session, in order, up to the last publish.
    let mut queued = Vec::new();
    while queued.last() != Some(&(published - 1)) {
        let (_, msgs) = split_connect(&s.connect(M, &cid));
        assert!(
            !msgs.is_empty(),
            "the session had nothing more after {queued:?}"
        );
        queued.extend(msgs.iter().filter_map(|m| m["data"]["i"].as_u64()));
    }
    let first = queued[0];
    assert_eq!(
        queued,
        (first..published).collect::<Vec<_>>(),
        "in order, none missing"
    );
    let lost = first.saturating_sub(seen.len() as u64);
    // About 1 KB a message: a 64 KiB write holds 63 of them.
    assert!(
        lost <= 64,
        "{lost} messages lost between the {} the socket wrote and the session's queue",
        seen.len()
    );
    assert!(
        first >= seen.len() as u64,
        "a message both written and queued"
    );
}

/// A message the server accepts is deliverable, even when it grows on the way: numbers are
/// written out as Faye writes them (`1e15` becomes `1000000000000000.0`), so a delivery can be
/// several times larger than the body that carried it, and larger than `--max-pending`. An
/// idle socket takes it whole instead of being cut (issue 16, item 3).
#[test]
fn a_delivery_larger_than_the_pending_bound_reaches_idle_subscribers() {
    if skip_against_faye("Faye has no output bound") {
        return;
    }
    // The smallest bound the configuration accepts for 64 KiB bodies.
    let s = Server::start(&[
        "--mount",
        M,
        "--timeout",
        "30",
        "--max-body",
        "65536",
        "--max-message",
        "65536",
        "--max-pending",
        "65580",
    ]);
    let admin = s.admin_addr();
    let (_, mut a) = subscriber(&s, "/big");
    let (_, mut b) = subscriber(&s, "/big");
    let numbers = vec!["1e15"; 12_000].join(",");
    let body = format!(r#"{{"channel":"/big","data":[{numbers}]}}"#);
    assert!(body.len() < 65536);
    assert_published(&s.post_json(M, &body), "/big");
    for ws in [&mut a, &mut b] {
        let frame = ws.read_json();
        let data = frame[0]["data"].as_array().expect("the data array");
        assert_eq!(data.len(), 12_000);
        let text = frame.encode();
        assert!(
            text.len() > 65580,
            "the delivery ({} bytes) outgrew the bound",
            text.len()
        );
    }
    let metrics = scrape_metrics(admin);
    assert_eq!(
        metrics.get(r#"bayou_slow_consumer_disconnects_total{mount="/faye"}"#),
        Some(&0.0)
    );
}
