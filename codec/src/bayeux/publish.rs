//! Publishing (spec 5.2, 5.3): validation, and the delivered form encoded once.

use super::Code;
use super::channel;
use super::json::Value;
use super::json::{Reply, field, js_string, truthy_field, write_str, write_value};
use simd_json::prelude::*;

#[allow(clippy::result_large_err)] // the reply is the product either way; it is built once
/// Validates a publish; on success returns the reply and the channel name.
pub fn check<'i>(msg: Value<'_, 'i>) -> Result<(Reply, &'i str), Reply> {
    let mut reply = Reply::for_request(msg);
    let own_error = reply.error.take();
    let name = field(msg, "channel");
    let valid = name
        .and_then(|v| v.into_string())
        .filter(|s| channel::is_name(s));
    if valid.is_none() {
        let shown = name.map(js_string).unwrap_or_default();
        reply.fail(Code::ChannelInvalid.with(&[&shown]));
    }
    if field(msg, "data").is_none() {
        reply.fail(Code::ParameterMissing.with(&["data"]));
    }
    if own_error.is_some() {
        reply.error = own_error;
    }
    match (reply.settle(), valid) {
        (true, Some(name)) => Ok((reply, name)),
        _ => Err(reply),
    }
}

/// What a delivery leaves out besides `clientId` (nothing, as in Faye, by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Strip<'a> {
    /// The publisher's `advice`, which could tell every subscriber to stop reconnecting.
    pub advice: bool,
    /// Keys of `ext` that carry credentials; an `ext` left empty is left out.
    pub ext_keys: &'a [&'a str],
}

/// The message subscribers receive: the published object without `clientId` and without what
/// `strip` names, as JSON.
pub fn delivered(msg: Value, strip: Strip<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(b'{');
    if let Some(obj) = msg.as_object() {
        let mut first = true;
        for (k, v) in obj.iter() {
            match k {
                "clientId" => continue,
                "advice" if strip.advice => continue,
                "ext" if !strip.ext_keys.is_empty() && has_any_key(v, strip.ext_keys) => {
                    let at = out.len();
                    if !first {
                        out.push(b',');
                    }
                    write_str(&mut out, k);
                    out.push(b':');
                    if write_without_keys(&mut out, v, strip.ext_keys) {
                        first = false;
                    } else {
                        // Nothing but credentials in it: no `ext` at all.
                        out.truncate(at);
                    }
                    continue;
                }
                _ => {}
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(&mut out, k);
            out.push(b':');
            write_value(&mut out, v);
        }
    }
    out.push(b'}');
    out
}

/// Whether `ext` is an object with one of the credential keys.
fn has_any_key(ext: Value, keys: &[&str]) -> bool {
    ext.as_object()
        .is_some_and(|o| o.keys().any(|k| keys.contains(&k)))
}

/// Writes the object `ext` without the credential keys; false (and nothing written) when
/// nothing else was in it.
fn write_without_keys(out: &mut Vec<u8>, ext: Value, keys: &[&str]) -> bool {
    let Some(obj) = ext.as_object() else {
        return false;
    };
    let at = out.len();
    out.push(b'{');
    let mut kept = 0;
    for (k, v) in obj.iter().filter(|(k, _)| !keys.contains(k)) {
        if kept > 0 {
            out.push(b',');
        }
        kept += 1;
        write_str(out, k);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
    if kept == 0 {
        out.truncate(at);
    }
    kept > 0
}

/// Whether a message carries a truthy `error` of its own.
pub fn has_error(msg: Value) -> bool {
    truthy_field(msg, "error").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn checks_and_delivery() {
        let mut b = parse(
            r#"{"channel":"/foo/bar","data":{"x":1},"id":"p1","clientId":"c","ext":{"k":2},"custom":"yes","advice":{"a":1}}"#,
        );
        let tape = simd_json::to_tape(&mut b).unwrap();
        let v = tape.as_value();
        let (reply, name) = check(v).unwrap();
        assert_eq!(name, "/foo/bar");
        let mut o = Vec::new();
        reply.write(&mut o);
        assert_eq!(
            o,
            br#"{"id":"p1","clientId":"c","channel":"/foo/bar","successful":true}"#
        );
        let d = String::from_utf8(delivered(v, Strip::default())).unwrap();
        assert_eq!(
            d,
            r#"{"channel":"/foo/bar","data":{"x":1},"id":"p1","ext":{"k":2},"custom":"yes","advice":{"a":1}}"#
        );
        let strip = Strip {
            advice: true,
            ext_keys: &["password", "token"],
        };
        let mut b = parse(
            r#"{"channel":"/a","data":1,"ext":{"password":"s","k":2,"token":"t"},"advice":{"reconnect":"none"}}"#,
        );
        let tape = simd_json::to_tape(&mut b).unwrap();
        let v = tape.as_value();
        let d = String::from_utf8(delivered(v, strip)).unwrap();
        assert_eq!(d, r#"{"channel":"/a","data":1,"ext":{"k":2}}"#);
        let mut b = parse(r#"{"channel":"/a","data":1,"ext":{"password":"s"},"x":2}"#);
        let tape = simd_json::to_tape(&mut b).unwrap();
        let v = tape.as_value();
        let d = String::from_utf8(delivered(v, strip)).unwrap();
        assert_eq!(d, r#"{"channel":"/a","data":1,"x":2}"#);

        for (json, err) in [
            (
                r#"{"channel":"/foo/*","data":1}"#,
                "405:/foo/*:Invalid channel",
            ),
            (r#"{"data":1}"#, "405::Invalid channel"),
            (r#"{"channel":"/a"}"#, "402:data:Missing required parameter"),
            (r#"{}"#, "402:data:Missing required parameter"),
            (
                r#"{"channel":"/a","data":1,"error":"999:custom:err"}"#,
                "999:custom:err",
            ),
        ] {
            let mut b = parse(json);
            let tape = simd_json::to_tape(&mut b).unwrap();
            let v = tape.as_value();
            let r = check(v).unwrap_err();
            assert_eq!(
                r.error.as_deref(),
                Some(format!("\"{err}\"").as_str()),
                "{json}"
            );
        }
        let mut b = parse(r#"{"channel":"/a","data":null}"#);
        let tape = simd_json::to_tape(&mut b).unwrap();
        let v = tape.as_value();
        assert!(check(v).is_ok());
    }
}
