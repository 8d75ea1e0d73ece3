//! `/meta/connect` (spec 4.2), with the hold time rules of spec 11.3.

use super::json::Value;
use super::json::{Reply, field, truthy_field};
use super::{CONNECTION_TYPES, Code};
use simd_json::prelude::*;

/// A connect that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    pub client_id: String,
    /// How long to hold the reply, in milliseconds, already clamped to the server timeout.
    pub hold_ms: u64,
    /// Which of the mount's advices the reply gets (`Advice::connect`), added when the reply
    /// is sent (a draining server advises otherwise).
    pub eventsource: bool,
}

/// JavaScript's numeric coercion of `advice.timeout`, as `setTimeout` sees it (NaN is 0).
fn coerce_ms(v: Value) -> f64 {
    let n = match v.value_type() {
        ValueType::I64 => v.as_i64().map_or(0.0, |n| n as f64),
        ValueType::U64 => v.as_u64().map_or(0.0, |n| n as f64),
        ValueType::F64 => v.as_f64().unwrap_or(0.0),
        ValueType::Bool => f64::from(u8::from(v.as_bool() == Some(true))),
        ValueType::String => v
            .as_str()
            .map_or(0.0, |s| s.trim().parse::<f64>().unwrap_or(0.0)),
        _ => 0.0,
    };
    if n.is_finite() && n > 0.0 { n } else { 0.0 }
}

#[allow(clippy::result_large_err)] // the reply is the product either way; it is built once
/// Validates a connect. `exists` tells whether a clientId names a live session. On success
/// the reply lacks only its advice (`Connect::eventsource`), added when the hold ends.
pub fn check(
    msg: Value,
    exists: impl Fn(&str) -> bool,
    timeout_ms: u64,
) -> Result<(Reply, Connect), Reply> {
    let mut reply = Reply::for_request(msg);
    let client_id = super::json::check_client(msg, &mut reply, exists);
    let conn_type = field(msg, "connectionType");
    let type_str = conn_type.and_then(|v| v.into_string());
    if !type_str.is_some_and(|t| CONNECTION_TYPES.contains(&t)) {
        let shown = conn_type.map(super::json::js_string).unwrap_or_default();
        reply.fail(Code::ConntypeMismatch.with(&[&shown]));
    }
    if truthy_field(msg, "connectionType").is_none() {
        reply.fail(Code::ParameterMissing.with(&["connectionType"]));
    }
    if !reply.settle() {
        reply.client_id = None;
        reply.push_raw("advice", super::ADVICE_HANDSHAKE);
        return Err(reply);
    }
    let eventsource = type_str == Some("eventsource");
    let requested = field(msg, "advice").and_then(|a| field(a, "timeout"));
    let hold_ms = match (eventsource, requested) {
        (true, _) => 0,
        (false, Some(v)) => (coerce_ms(v) as u64).min(timeout_ms),
        (false, None) => timeout_ms,
    };
    let client_id = client_id.unwrap_or_default().to_owned();
    Ok((
        reply,
        Connect {
            client_id,
            hold_ms,
            eventsource,
        },
    ))
}

/// The reply to a connect for a session this process does not hold while the session
/// directory (Redis) is unreachable: the session may well live on another process, so the
/// client is told to retry the connect after `interval_ms` under the same clientId, not to
/// handshake again (that would abandon the session and what is queued for it).
pub fn unreachable(msg: Value, client_id: &str, interval_ms: u64, timeout_ms: u64) -> Reply {
    let mut reply = Reply::for_request(msg);
    reply.fail(format!(
        "503:{client_id}:Session directory unreachable; retry"
    ));
    reply.settle();
    reply.push_raw(
        "advice",
        super::advice_retry(interval_ms, timeout_ms).as_bytes(),
    );
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_directory_asks_for_a_retry_under_the_same_client_id() {
        let mut b = br#"{"channel":"/meta/connect","clientId":"abc","connectionType":"long-polling","id":"7"}"#.to_vec();
        let tape = simd_json::to_tape(&mut b).unwrap();
        let mut out = Vec::new();
        unreachable(tape.as_value(), "abc", 1000, 45_000).write(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""successful":false"#), "{text}");
        assert!(text.contains(r#""clientId":"abc""#), "{text}");
        assert!(
            text.contains(r#""error":"503:abc:Session directory unreachable; retry""#),
            "{text}"
        );
        assert!(
            text.contains(r#""advice":{"reconnect":"retry","interval":1000,"timeout":45000}"#),
            "{text}"
        );
    }

    fn run(json: &str, exists: bool) -> Result<(String, u64), String> {
        let mut b = json.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut b).unwrap();
        let v = tape.as_value();
        let write = |r: &Reply| {
            let mut o = Vec::new();
            r.write(&mut o);
            String::from_utf8(o).unwrap()
        };
        match check(v, |_| exists, 45_000) {
            Ok((mut r, c)) => {
                r.push_raw(
                    "advice",
                    super::super::Advice::new(0, 45_000).connect(c.eventsource),
                );
                Ok((write(&r), c.hold_ms))
            }
            Err(r) => Err(write(&r)),
        }
    }

    #[test]
    fn last_failing_check_wins() {
        let e = run(
            r#"{"channel":"/meta/connect","clientId":"x","connectionType":"flash","id":"1"}"#,
            false,
        );
        assert_eq!(
            e.unwrap_err(),
            r#"{"id":"1","channel":"/meta/connect","successful":false,"error":"301:flash:Connection types not supported","advice":{"reconnect":"handshake"}}"#
        );
        let e = run(
            r#"{"channel":"/meta/connect","clientId":"nosuch","connectionType":"long-polling"}"#,
            false,
        );
        assert!(
            e.unwrap_err()
                .contains(r#""error":"401:nosuch:Unknown client""#)
        );
        let e = run(
            r#"{"channel":"/meta/connect","connectionType":"long-polling"}"#,
            false,
        );
        assert!(e.unwrap_err().contains("402:clientId:"));
        let e = run(r#"{"channel":"/meta/connect","clientId":"c"}"#, true);
        assert!(e.unwrap_err().contains("402:connectionType:"));
    }

    #[test]
    fn hold_times() {
        let base = r#"{"channel":"/meta/connect","clientId":"c","connectionType":"long-polling""#;
        let hold = |extra: &str| run(&format!("{base}{extra}}}"), true).unwrap().1;
        assert_eq!(hold(""), 45_000);
        assert_eq!(hold(r#","advice":{}"#), 45_000);
        assert_eq!(hold(r#","advice":{"timeout":0}"#), 0);
        assert_eq!(hold(r#","advice":{"timeout":null}"#), 0);
        assert_eq!(hold(r#","advice":{"timeout":-5}"#), 0);
        assert_eq!(hold(r#","advice":{"timeout":1500}"#), 1500);
        assert_eq!(hold(r#","advice":{"timeout":"1000"}"#), 1000);
        assert_eq!(hold(r#","advice":{"timeout":100000}"#), 45_000);
        let es = r#"{"channel":"/meta/connect","clientId":"c","connectionType":"eventsource"}"#;
        let (reply, hold) = run(es, true).unwrap();
        assert_eq!(hold, 0);
        assert!(reply.ends_with(r#""advice":{"reconnect":"retry","interval":45000,"timeout":0}}"#));
    }
}
