//! `/meta/disconnect` (spec 4.5).

use super::Code;
use super::json::{Reply, js_string, str_field, truthy_field};
use simd_json::BorrowedValue as Value;

/// Validates a disconnect; on success the caller destroys the client named by the reply.
pub fn check(msg: &Value, exists: impl Fn(&str) -> bool) -> (Reply, Option<String>) {
    let mut reply = Reply::for_request(msg);
    let client_id = str_field(msg, "clientId").filter(|s| !s.is_empty());
    let cid_value = truthy_field(msg, "clientId");
    if !client_id.is_some_and(exists) {
        let shown = cid_value.map(js_string).unwrap_or_default();
        reply.fail(Code::ClientUnknown.with(&[&shown]));
    }
    if cid_value.is_none() {
        reply.fail(Code::ParameterMissing.with(&["clientId"]));
    }
    if reply.settle() {
        (reply, client_id.map(str::to_owned))
    } else {
        reply.client_id = None;
        (reply, None)
    }
}
