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

/// The message subscribers receive: the published object without `clientId`, as JSON.
pub fn delivered(msg: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(b'{');
    if let Value::Object(obj) = msg {
        let mut first = true;
        for (k, v) in obj.iter().filter(|(k, _)| k.as_ref() != "clientId") {
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
        let d = String::from_utf8(delivered(&v)).unwrap();
        assert_eq!(
            d,
            r#"{"channel":"/foo/bar","data":{"x":1},"id":"p1","ext":{"k":2},"custom":"yes","advice":{"a":1}}"#
        );

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
