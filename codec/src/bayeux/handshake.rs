//! `/meta/handshake` (spec 4.1).

use super::Code;
use super::json::Value;
use super::json::{Reply, field, items_or_itself, js_string, truthy, truthy_field};
use simd_json::prelude::*;

/// Every connection type Faye lists, in its order; always sent in full (spec 11.14).
pub const CONNECTION_TYPES: [&str; 6] = [
    "long-polling",
    "cross-origin-long-polling",
    "callback-polling",
    "websocket",
    "eventsource",
    "in-process",
];
const TYPES_JSON: &[u8] = br#"["long-polling","cross-origin-long-polling","callback-polling","websocket","eventsource","in-process"]"#;

/// Validates a handshake. The reply carries `version` and the type list; when it is
/// successful the caller creates the client and calls [`accept`].
pub fn check(msg: Value) -> Reply {
    let mut reply = Reply::for_request(msg);
    if truthy_field(msg, "version").is_none() {
        reply.fail(Code::ParameterMissing.with(&["version"]));
    }
    match field(msg, "supportedConnectionTypes").filter(|v| truthy(*v)) {
        None => reply.fail(Code::ParameterMissing.with(&["supportedConnectionTypes"])),
        Some(types) => {
            let common = types.as_array().is_some_and(|items| {
                items.iter().any(|t| match t.as_str() {
                    Some(name) => CONNECTION_TYPES.contains(&name),
                    None => CONNECTION_TYPES.contains(&js_string(t).as_str()),
                })
            });
            if !common {
                let listed: Vec<String> = items_or_itself(types).map(js_string).collect();
                let args: Vec<&str> = listed.iter().map(String::as_str).collect();
                reply.fail(Code::ConntypeMismatch.with(&args));
            }
        }
    }
    reply.client_id = None;
    reply.push_raw("version", b"\"1.0\"");
    reply.push_raw("supportedConnectionTypes", TYPES_JSON);
    if !reply.settle() {
        reply.push_raw("advice", super::ADVICE_HANDSHAKE);
    }
    reply
}

/// Turns a valid handshake into a refusal with `error`, advising the client to wait `wait_ms`
/// before handshaking again.
pub fn refuse(reply: &mut Reply, error: &str, wait_ms: u64) {
    reply.fail(error.to_owned());
    reply.settle();
    let advice = format!(r#"{{"reconnect":"handshake","interval":{wait_ms}}}"#);
    reply.push_raw("advice", advice.as_bytes());
}

/// Completes a successful reply with the new clientId and the advice.
pub fn accept(reply: &mut Reply, client_id: &str, advice: &[u8]) {
    reply.push_str("clientId", client_id);
    reply.push_raw("advice", advice);
}
