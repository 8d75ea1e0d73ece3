//! Publishing (spec 5.2, 5.3): validation, and the delivered form encoded once.

use super::Code;
use super::channel;
use super::json::{Reply, field, js_string, truthy_field, write_str, write_value};
use simd_json::BorrowedValue as Value;

#[allow(clippy::result_large_err)] // the reply is the product either way; it is built once
/// Validates a publish; on success returns the reply and the channel name.
pub fn check<'v>(msg: &'v Value) -> Result<(Reply, &'v str), Reply> {
    let mut reply = Reply::for_request(msg);
    let own_error = reply.error.take();
    let name = field(msg, "channel");
    let valid = match name {
        Some(Value::String(s)) if channel::is_name(s) => Some(s.as_ref()),
        _ => None,
    };
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
pub fn delivered(msg: &Value, strip: Strip<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(b'{');
    if let Value::Object(obj) = msg {
        let mut first = true;
        for (k, v) in obj.iter() {
            let v = match k.as_ref() {
                "clientId" => continue,
                "advice" if strip.advice => continue,
                "ext" if !strip.ext_keys.is_empty() => match without_keys(v, strip.ext_keys) {
                    Some(kept) => kept,
                    None => continue,
                },
                _ => std::borrow::Cow::Borrowed(v),
            };
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(&mut out, k);
            out.push(b':');
            write_value(&mut out, &v);
        }
    }
    out.push(b'}');
    out
}

/// `ext` without the credential keys; None when nothing else was in it.
fn without_keys<'v, 'a>(
    ext: &'v Value<'a>,
    keys: &[&str],
) -> Option<std::borrow::Cow<'v, Value<'a>>> {
    let Value::Object(obj) = ext else {
        return Some(std::borrow::Cow::Borrowed(ext));
    };
    if !obj.keys().any(|k| keys.contains(&k.as_ref())) {
        return Some(std::borrow::Cow::Borrowed(ext));
    }
    let mut kept = obj.as_ref().clone();
    kept.retain(|k, _| !keys.contains(&k.as_ref()));
    (!kept.is_empty()).then(|| std::borrow::Cow::Owned(Value::Object(Box::new(kept))))
}

/// Whether a message carries a truthy `error` of its own.
pub fn has_error(msg: &Value) -> bool {
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
        let v = simd_json::to_borrowed_value(&mut b).unwrap();
        let (reply, name) = check(&v).unwrap();
        assert_eq!(name, "/foo/bar");
        let mut o = Vec::new();
        reply.write(&mut o);
        assert_eq!(
            o,
            br#"{"id":"p1","clientId":"c","channel":"/foo/bar","successful":true}"#
        );
        let d = String::from_utf8(delivered(&v, Strip::default())).unwrap();
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
        let v = simd_json::to_borrowed_value(&mut b).unwrap();
        let d = String::from_utf8(delivered(&v, strip)).unwrap();
        assert_eq!(d, r#"{"channel":"/a","data":1,"ext":{"k":2}}"#);
        let mut b = parse(r#"{"channel":"/a","data":1,"ext":{"password":"s"},"x":2}"#);
        let v = simd_json::to_borrowed_value(&mut b).unwrap();
        let d = String::from_utf8(delivered(&v, strip)).unwrap();
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
            let v = simd_json::to_borrowed_value(&mut b).unwrap();
            let r = check(&v).unwrap_err();
            assert_eq!(
                r.error.as_deref(),
                Some(format!("\"{err}\"").as_str()),
                "{json}"
            );
        }
        let mut b = parse(r#"{"channel":"/a","data":null}"#);
        let v = simd_json::to_borrowed_value(&mut b).unwrap();
        assert!(check(&v).is_ok());
    }
}
