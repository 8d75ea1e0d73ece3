//! The Bayeux side of the harness, sans-IO: the messages it sends and the few facts it needs
//! from what comes back, found by scanning bytes rather than parsing JSON, so the harness
//! spends little CPU per delivery.
//!
//! Every published `data` is `{"s":SEQ,"t":MICROS}` (plus `"p"` padding when asked): the
//! sequence number and the send time on the machine-wide monotonic clock. Both Faye (which
//! re-serialises with `JSON.stringify`, keeping key order) and Bayou (which forwards `data`
//! verbatim) deliver it byte for byte, so `"data":{"s":` marks each delivery.

use memchr::memmem;

const DATA_MARK: &[u8] = br#""data":{"s":"#;
const TIME_MARK: &[u8] = br#","t":"#;

/// One delivered message's sequence number and send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub sent_us: u64,
}

fn digits(bytes: &[u8]) -> Option<(u64, usize)> {
    let n = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let v = std::str::from_utf8(&bytes[..n]).ok()?.parse().ok()?;
    Some((v, n))
}

/// Calls `f` for every bench delivery in a reply or frame payload (a JSON array of messages).
pub fn for_each_delivery(payload: &[u8], mut f: impl FnMut(Stamp)) {
    for at in memmem::find_iter(payload, DATA_MARK) {
        let rest = &payload[at + DATA_MARK.len()..];
        let Some((seq, n)) = digits(rest) else {
            continue;
        };
        let Some(rest) = rest[n..].strip_prefix(TIME_MARK) else {
            continue;
        };
        if let Some((sent_us, _)) = digits(rest) {
            f(Stamp { seq, sent_us });
        }
    }
}

/// True when the payload holds a `/meta/connect` reply (the server answered a held connect).
pub fn has_connect_reply(payload: &[u8]) -> bool {
    memmem::find(payload, br#""channel":"/meta/connect""#).is_some()
}

/// How many messages of a reply say `"successful":true`.
pub fn count_successful(payload: &[u8]) -> usize {
    memmem::find_iter(payload, br#""successful":true"#).count()
}

/// True when the payload holds a successful `/meta/subscribe` reply.
pub fn subscribed(payload: &[u8]) -> bool {
    memmem::find(payload, br#""channel":"/meta/subscribe""#).is_some()
        && count_successful(payload) > 0
}

/// The `clientId` of a handshake reply.
pub fn client_id(payload: &[u8]) -> Option<String> {
    const MARK: &[u8] = br#""clientId":""#;
    let at = memmem::find(payload, MARK)? + MARK.len();
    let len = payload[at..].iter().position(|&b| b == b'"')?;
    String::from_utf8(payload[at..at + len].to_vec()).ok()
}

pub fn handshake(connection_type: &str) -> String {
    format!(
        r#"[{{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["{connection_type}"],"id":"h"}}]"#
    )
}

/// A `/meta/connect`; `immediate` asks for an answer without holding (as the real client's
/// first connect does, with `advice.timeout` 0).
pub fn connect(client_id: &str, connection_type: &str, immediate: bool) -> String {
    let advice = if immediate {
        r#","advice":{"timeout":0}"#
    } else {
        ""
    };
    format!(
        r#"{{"channel":"/meta/connect","clientId":"{client_id}","connectionType":"{connection_type}","id":"c"{advice}}}"#
    )
}

pub fn subscribe(client_id: &str, channel: &str) -> String {
    format!(
        r#"{{"channel":"/meta/subscribe","clientId":"{client_id}","subscription":"{channel}","id":"s"}}"#
    )
}

/// Appends one publish message carrying `stamp` and `pad` bytes of padding.
pub fn push_publish(out: &mut Vec<u8>, channel: &str, stamp: Stamp, pad: usize) {
    use std::io::Write;
    let _ = write!(
        out,
        r#"{{"channel":"{channel}","data":{{"s":{},"t":{}"#,
        stamp.seq, stamp.sent_us
    );
    if pad > 0 {
        out.extend_from_slice(br#","p":""#);
        out.resize(out.len() + pad, b'x');
        out.push(b'"');
    }
    out.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamps(payload: &[u8]) -> Vec<Stamp> {
        let mut v = Vec::new();
        for_each_delivery(payload, |s| v.push(s));
        v
    }

    #[test]
    fn finds_every_delivery_in_a_long_poll_reply() {
        let reply = br#"[{"id":"c","clientId":"x","channel":"/meta/connect","successful":true},{"channel":"/u/1","data":{"s":7,"t":1234}},{"channel":"/u/1","data":{"s":8,"t":1300,"p":"xx"},"id":"q"}]"#;
        let got = stamps(reply);
        assert_eq!(
            got,
            vec![
                Stamp {
                    seq: 7,
                    sent_us: 1234
                },
                Stamp {
                    seq: 8,
                    sent_us: 1300
                }
            ]
        );
        assert!(has_connect_reply(reply));
        assert_eq!(count_successful(reply), 1);
    }

    #[test]
    fn a_published_message_scans_back() {
        let mut body = b"[".to_vec();
        let stamp = Stamp {
            seq: 42,
            sent_us: 99,
        };
        push_publish(&mut body, "/u/3", stamp, 5);
        body.push(b']');
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"[{"channel":"/u/3","data":{"s":42,"t":99,"p":"xxxxx"}}]"#
        );
        assert_eq!(stamps(&body), vec![stamp]);
    }

    #[test]
    fn ignores_other_data_and_truncated_stamps() {
        assert!(stamps(br#"[{"channel":"/a","data":{"x":1}}]"#).is_empty());
        assert!(stamps(br#"[{"channel":"/a","data":{"s":1}}]"#).is_empty());
        assert!(stamps(br#"[{"channel":"/a","data":{"s":,"t":1}}]"#).is_empty());
    }

    #[test]
    fn handshake_and_subscribe_replies() {
        let hs = br#"[{"id":"h","channel":"/meta/handshake","successful":true,"version":"1.0","clientId":"abc123","advice":{}}]"#;
        assert_eq!(client_id(hs).as_deref(), Some("abc123"));
        assert!(subscribed(
            br#"[{"id":"s","clientId":"a","channel":"/meta/subscribe","successful":true,"subscription":"/u/1"}]"#
        ));
        assert!(!subscribed(
            br#"[{"channel":"/meta/subscribe","successful":false,"error":"401::x"}]"#
        ));
    }
}
