//! Engine unit tests: time is passed in, nothing sleeps.

use super::delivery::single;
use super::*;

const T: Duration = Duration::from_secs(10);

const REPLY: &[u8] = br#"{"channel":"/meta/connect","successful":true}"#;

fn engine() -> Engine {
    Engine::new(0, 1, 1, T)
}

#[test]
fn one_copy_per_client_across_patterns() {
    let mut e = engine();
    let now = Instant::now();
    let c = e.handshake(0, now);
    e.subscribe(
        0,
        &c,
        &[
            "/foo/bar".into(),
            "/foo/*".into(),
            "/foo/**".into(),
            "/**".into(),
        ],
    );
    let effects = e.take_effects();
    assert_eq!(effects.len(), 4, "each key flips on once");
    assert_eq!(e.deliver(0, "/foo/bar", &Bytes::from_static(b"{}")), 1);
    match e.connect(0, &c, T, None, now) {
        ConnectOutcome::Now(msgs) => assert_eq!(msgs.len(), 1),
        _ => panic!("queued messages answer a connect at once"),
    }
}

#[test]
fn held_connect_wakes_on_delivery_and_deadline() {
    let mut e = engine();
    let now = Instant::now();
    let c = e.handshake(0, now);
    e.subscribe(0, &c, &["/a".into()]);
    let ConnectOutcome::Held(signal, id) = e.connect(0, &c, T, None, now) else {
        panic!("held")
    };
    assert!(!signal.is_set());
    e.deliver(0, "/a", &Bytes::from_static(b"{\"x\":1}"));
    assert!(signal.is_set());
    assert_eq!(e.finish_connect(0, &c, id).len(), 1);

    let ConnectOutcome::Held(signal, _) = e.connect(0, &c, T, None, now) else {
        panic!("held")
    };
    e.tick(now + T / 2);
    assert!(!signal.is_set());
    e.tick(now + T);
    assert!(signal.is_set(), "the hold deadline answers the connect");
}

#[test]
fn newer_connect_answers_the_older_one() {
    let mut e = engine();
    let now = Instant::now();
    let c = e.handshake(0, now);
    let ConnectOutcome::Held(first, _) = e.connect(0, &c, T, None, now) else {
        panic!("held")
    };
    let ConnectOutcome::Held(second, _) = e.connect(0, &c, T, None, now) else {
        panic!("held")
    };
    assert!(first.is_set() && !second.is_set());
}

#[test]
fn expiry_after_twice_the_timeout_leaves_no_entries() {
    let mut e = engine();
    let now = Instant::now();
    let c = e.handshake(0, now);
    e.subscribe(0, &c, &["/a".into(), "/b/**".into()]);
    for effect in e.take_effects() {
        e.apply_interest(effect.mount, &effect.channel, 0, effect.on);
    }
    assert_eq!(e.table_sizes(0), (1, 2, 1, 1));
    e.tick(now + 2 * T - Duration::from_millis(1));
    assert!(e.exists(0, &c));
    e.tick(now + 2 * T);
    assert!(!e.exists(0, &c));
    for effect in e.take_effects() {
        assert!(!effect.on);
        e.apply_interest(effect.mount, &effect.channel, 0, effect.on);
    }
    assert_eq!(e.table_sizes(0), (0, 0, 0, 0));
}

#[test]
fn a_connect_keeps_the_client_alive() {
    let mut e = engine();
    let now = Instant::now();
    let c = e.handshake(0, now);
    let later = now + T + T / 2;
    let _ = e.connect(0, &c, Duration::ZERO, None, later);
    e.tick(now + 2 * T + Duration::from_secs(1));
    assert!(e.exists(0, &c));
    e.tick(later + 2 * T);
    assert!(!e.exists(0, &c));
}

#[test]
fn closing_an_old_socket_keeps_the_new_one() {
    let mut e = engine();
    let now = Instant::now();
    let c = e.handshake(0, now);
    e.subscribe(0, &c, &["/a".into()]);
    let old = Rc::new(Outbox::new(1, OutboxKind::WebSocket));
    let new = Rc::new(Outbox::new(2, OutboxKind::WebSocket));
    let _ = e.connect(0, &c, Duration::ZERO, Some((old.clone(), REPLY)), now);
    let _ = e.connect(0, &c, Duration::ZERO, Some((new.clone(), REPLY)), now);
    e.socket_gone(&old);
    e.deliver(0, "/a", &Bytes::from_static(b"{}"));
    let mut frames = Vec::new();
    new.drain(&mut frames);
    assert_eq!(
        frames.len(),
        2,
        "connect reply and the delivery on the newer socket"
    );
}

#[test]
fn disconnect_closes_the_bound_socket() {
    let mut e = engine();
    let now = Instant::now();
    let c = e.handshake(0, now);
    let ws = Rc::new(Outbox::new(1, OutboxKind::WebSocket));
    let _ = e.connect(0, &c, T, Some((ws.clone(), REPLY)), now);
    e.destroy(0, &c);
    assert_eq!(ws.closing(), Some(1000));
    assert!(!e.is_bound(&ws));
}

#[test]
fn idle_client_records_stay_small() {
    // An idle client is mostly these; see perf/RESULTS.md before letting them grow. The outbox
    // is allocated in an `Rc` (16 bytes more), and glibc's chunk for 121 to 136 bytes is 144.
    let sizes = (
        std::mem::size_of::<Session>(),
        std::mem::size_of::<Outbox>(),
    );
    assert!(sizes.0 <= 128 && sizes.1 <= 120, "{sizes:?}");
}

#[test]
fn pattern_keys_are_counted_for_delivery() {
    let mut e = engine();
    let now = Instant::now();
    let (a, b) = (e.handshake(0, now), e.handshake(0, now));
    let msg = Bytes::from_static(b"{}");
    e.subscribe(0, &a, &["/x/*".into(), "/x/y".into()]);
    e.subscribe(0, &b, &["/x/*".into(), "/**".into()]);
    assert_eq!(e.mounts[0].local_patterns, 2);
    assert_eq!(e.deliver(0, "/x/y", &msg), 2);
    e.unsubscribe(0, &a, &["/x/*".into()]);
    assert_eq!(e.mounts[0].local_patterns, 2, "b still holds /x/*");
    e.destroy(0, &b);
    assert_eq!(e.mounts[0].local_patterns, 0);
    assert_eq!(e.deliver(0, "/x/y", &msg), 1);
    assert_eq!(e.deliver(0, "/x/z", &msg), 0);
}

#[test]
fn every_socket_of_a_delivery_gets_its_frame_once() {
    let mut e = engine();
    let now = Instant::now();
    let msg = Bytes::from_static(br#"{"channel":"/x/y","data":1}"#);
    let sockets: Vec<Rc<Outbox>> = [
        OutboxKind::WebSocket,
        OutboxKind::EventSource,
        OutboxKind::WebSocket,
        OutboxKind::WebSocket,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, kind)| {
        let c = e.handshake(0, now);
        // Exact and pattern keys, so one delivery visits some sessions twice.
        e.subscribe(0, &c, &["/x/y".into(), "/x/*".into()]);
        let out = Rc::new(Outbox::new(i as u64, kind));
        let _ = e.connect(0, &c, Duration::ZERO, Some((out.clone(), REPLY)), now);
        let mut reply = Vec::new();
        out.drain(&mut reply);
        out
    })
    .collect();
    assert_eq!(e.deliver(0, "/x/y", &msg), 4);
    let ws = frame_for(OutboxKind::WebSocket, &single(&msg));
    let es = frame_for(OutboxKind::EventSource, &single(&msg));
    for out in &sockets {
        let mut frames = Vec::new();
        out.drain(&mut frames);
        let want = match out.kind {
            OutboxKind::WebSocket => &ws,
            OutboxKind::EventSource => &es,
        };
        assert_eq!(frames, vec![want.clone()], "socket {}", out.id);
    }
}

/// A slow-consumer cut gives the socket's unwritten deliveries back to the session, ahead of
/// what arrives after the cut, so the client's next connect receives them all in order.
#[test]
fn a_cut_sockets_unwritten_deliveries_go_back_to_the_session_in_order() {
    for kind in [OutboxKind::WebSocket, OutboxKind::EventSource] {
        let mut e = engine();
        let now = Instant::now();
        let c = e.handshake(0, now);
        e.subscribe(0, &c, &["/a".into()]);
        let msg = |n: u8| Bytes::from(format!(r#"{{"channel":"/a","data":"{}"}}"#, n as char));
        // Room for the connect reply and two deliveries, not three.
        let limit = REPLY.len() + 2 * msg(b'1').len() + 32 + 3 * super::outbox::FRAME_OVERHEAD;
        let out = Rc::new(Outbox::with_bell(1, kind, 0, limit, false));
        let _ = e.connect(0, &c, Duration::ZERO, Some((out.clone(), REPLY)), now);
        for n in b'1'..=b'3' {
            e.deliver(0, "/a", &msg(n));
        }
        assert!(out.aborted(), "the third delivery is over the limit");
        e.deliver(0, "/a", &msg(b'4'));
        assert!(
            !e.is_bound(&out),
            "the cut socket is unbound at the next delivery"
        );
        e.socket_gone(&out);
        assert_eq!(e.queued[0], 4);
        match e.connect(0, &c, T, None, now) {
            ConnectOutcome::Now(msgs) => {
                assert_eq!(msgs, (b'1'..=b'4').map(msg).collect::<Vec<_>>(), "{kind:?}")
            }
            _ => panic!("a queue answers a connect at once"),
        }
    }
}

#[test]
fn a_closed_socket_gives_back_what_it_never_wrote() {
    let mut e = engine();
    let now = Instant::now();
    let c = e.handshake(0, now);
    e.subscribe(0, &c, &["/a".into()]);
    let out = Rc::new(Outbox::new(1, OutboxKind::WebSocket));
    let _ = e.connect(0, &c, Duration::ZERO, Some((out.clone(), REPLY)), now);
    let m = Bytes::from_static(br#"{"channel":"/a","data":1}"#);
    e.deliver(0, "/a", &m);
    e.socket_gone(&out);
    match e.connect(0, &c, T, None, now) {
        ConnectOutcome::Now(msgs) => assert_eq!(msgs, vec![m]),
        _ => panic!("a queue answers a connect at once"),
    }
}

#[test]
fn take_queue_takes_the_messages_and_nothing_else() {
    let mut e = engine();
    let now = Instant::now();
    let c = e.handshake(0, now);
    e.subscribe(0, &c, &["/a".into()]);
    e.deliver(0, "/a", &Bytes::from_static(b"{\"x\":1}"));
    e.deliver(0, "/a", &Bytes::from_static(b"{\"x\":2}"));
    let taken = e.take_queue(0, &c);
    assert_eq!(taken, [&b"{\"x\":1}"[..], &b"{\"x\":2}"[..]]);
    assert!(e.take_queue(0, &c).is_empty(), "taken once");
    assert!(e.take_queue(0, "unknown").is_empty());
    assert!(e.exists(0, &c), "the session stays");
    // Nothing is left to answer a connect with, so it is held.
    let ConnectOutcome::Held(..) = e.connect(0, &c, T, None, now) else {
        panic!("a held connect")
    };
}

#[test]
fn presence_counts_each_client_a_publish_would_reach_once() {
    let mut e = engine();
    let now = Instant::now();
    assert_eq!(e.presence(0, "/users/42"), 0);
    let a = e.handshake(0, now);
    let b = e.handshake(0, now);
    let c = e.handshake(0, now);
    e.subscribe(0, &a, &["/users/42".into()]);
    assert_eq!(e.presence(0, "/users/42"), 1);
    e.subscribe(0, &b, &["/users/42".into(), "/users/*".into()]);
    e.subscribe(0, &c, &["/users/**".into()]);
    assert_eq!(
        e.presence(0, "/users/42"),
        3,
        "b once, though it matches twice"
    );
    assert_eq!(e.presence(0, "/users/7"), 2);
    assert_eq!(e.presence(0, "/other"), 0);
    e.destroy(0, &b);
    assert_eq!(e.presence(0, "/users/42"), 2);
    e.unsubscribe(0, &a, &["/users/42".into()]);
    assert_eq!(e.presence(0, "/users/42"), 1);
}
