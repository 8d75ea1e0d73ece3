//! `/meta/disconnect` (spec 4.5).

use super::json::Reply;
use super::json::Value;

/// Validates a disconnect; on success the caller destroys the client named by the reply.
pub fn check(msg: Value, exists: impl Fn(&str) -> bool) -> (Reply, Option<String>) {
    let mut reply = Reply::for_request(msg);
    let client_id = super::json::check_client(msg, &mut reply, exists);
    if reply.settle() {
        (reply, client_id.map(str::to_owned))
    } else {
        reply.client_id = None;
        (reply, None)
    }
}
