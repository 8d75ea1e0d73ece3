//! `/meta/subscribe` and `/meta/unsubscribe` (spec 4.3, 4.4): the same validation and reply.

use super::Code;
use super::channel;
use super::json::Value;
use super::json::{Reply, items_or_itself, js_string, truthy_field};
use simd_json::prelude::*;

/// Validates a (un)subscribe. Returns the reply and the channels to apply: those before the
/// first failing one (Faye keeps them, spec 11.6), so a failed reply may still change state.
pub fn check(msg: Value, exists: impl Fn(&str) -> bool) -> (Reply, Vec<String>) {
    check_with(msg, exists, |_, _| Ok(()))
}

/// [`check`], with `admit(channel, index)` asked about each valid channel in turn (limits and
/// authorisation); its error fails the reply at that channel, as an invalid name would.
pub fn check_with(
    msg: Value,
    exists: impl Fn(&str) -> bool,
    mut admit: impl FnMut(&str, usize) -> Result<(), String>,
) -> (Reply, Vec<String>) {
    let mut reply = Reply::for_request(msg);
    let _client_id = super::json::check_client(msg, &mut reply, exists);
    let subscription = truthy_field(msg, "subscription");
    if subscription.is_none() {
        reply.fail(Code::ParameterMissing.with(&["subscription"]));
    }
    let wanted = subscription.into_iter().flat_map(items_or_itself);
    let mut apply = Vec::new();
    for item in wanted {
        if reply.error.is_some() {
            break;
        }
        let name = js_string(item);
        let is_str = item.as_str().is_some();
        if !(is_str && channel::is_subscribable(&name)) {
            reply.fail(Code::ChannelForbidden.with(&[&name]));
        }
        if !(is_str && channel::is_valid(&name)) {
            reply.fail(Code::ChannelInvalid.with(&[&name]));
        }
        if reply.error.is_none()
            && let Err(e) = admit(&name, apply.len())
        {
            reply.fail(e);
        }
        if reply.error.is_none() {
            apply.push(name);
        }
    }
    reply.settle();
    match subscription {
        Some(v) => reply.push_value("subscription", v),
        None => reply.push_raw("subscription", b"[]"),
    }
    (reply, apply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(json: &str) -> (String, Vec<String>) {
        let mut b = json.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut b).unwrap();
        let v = tape.as_value();
        let (r, apply) = check(v, |_| true);
        let mut o = Vec::new();
        r.write(&mut o);
        (String::from_utf8(o).unwrap(), apply)
    }

    #[test]
    fn partial_subscription_and_echo() {
        let (r, apply) = run(
            r#"{"channel":"/meta/subscribe","clientId":"c","id":"6","subscription":["/p1","/bad.x","/p2"]}"#,
        );
        assert_eq!(
            r,
            r#"{"id":"6","clientId":"c","channel":"/meta/subscribe","successful":false,"error":"405:/bad.x:Invalid channel","subscription":["/p1","/bad.x","/p2"]}"#
        );
        assert_eq!(apply, vec!["/p1"]);
        let (r, apply) =
            run(r#"{"channel":"/meta/subscribe","clientId":"c","subscription":"/chat"}"#);
        assert!(r.ends_with(r#""successful":true,"subscription":"/chat"}"#));
        assert_eq!(apply, vec!["/chat"]);
        let (r, _) = run(r#"{"channel":"/meta/subscribe","clientId":"c","subscription":""}"#);
        assert!(r.ends_with(
            r#""error":"402:subscription:Missing required parameter","subscription":[]}"#
        ));
        let (r, apply) = run(r#"{"channel":"/meta/subscribe","clientId":"c","subscription":[]}"#);
        assert!(r.contains(r#""successful":true,"subscription":[]"#) && apply.is_empty());
        for ch in ["/service/x", "/service/*", "/meta/connect", "/meta/*"] {
            let (r, apply) = run(&format!(
                r#"{{"channel":"/meta/subscribe","clientId":"c","subscription":"{ch}"}}"#
            ));
            assert!(r.contains(&format!("403:{ch}:Forbidden channel")), "{r}");
            assert!(apply.is_empty());
        }
        for ch in ["/foo/*/bar", "/foo/***", "/bad/ch.x"] {
            let (r, _) = run(&format!(
                r#"{{"channel":"/meta/subscribe","clientId":"c","subscription":"{ch}"}}"#
            ));
            assert!(r.contains(&format!("405:{ch}:Invalid channel")), "{r}");
        }
    }
}
