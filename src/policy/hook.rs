//! The backend authorisation hook's rules, sans-IO: what Bayou asks the backend, how it reads
//! the answer, and the short cache of allow decisions. The HTTP exchange itself is
//! `crate::authhook`; the router decides when to ask.
//!
//! A question is one JSON object, for example:
//!
//! ```json
//! {"mount":"/faye","channel":"/meta/subscribe","subscription":"/users/42",
//!  "ext":{"authToken":"..."},"headers":{"cookie":"session=..."},"address":"10.0.0.7",
//!  "clientId":"..."}
//! ```
//!
//! The answer is `{"allow": true}`, or `{"allow": false, "error": "403:/users/42:Forbidden"}`
//! (a 401 or 403 status denies too). Anything else (another status, not JSON, over
//! [`MAX_ANSWER`]) is a failure, which the mount's failure policy turns into allow or deny.

use crate::bayeux::json::{Value, write_str, write_value};
use futures::future::LocalBoxFuture;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The largest answer body read; a longer one is a failure.
pub const MAX_ANSWER: usize = 16 * 1024;
/// The longest error text taken from the backend; a longer one is cut.
const MAX_ERROR: usize = 512;
/// Allow decisions cached per mount, across workers; when full, expired ones go first, then all.
const CACHE_ENTRIES: usize = 65_536;

/// Asks a mount's backend: the transport's HTTP client implements it, and the server wiring
/// gives each worker one per hooked mount. A trait, so that the shard layer asks without
/// importing the transport, and this layer stays sans-IO.
pub trait AskBackend {
    /// The backend's verdict on `body` (`denied`: the error of a denial that names none).
    fn ask(
        self: Rc<Self>,
        body: Vec<u8>,
        denied: String,
    ) -> LocalBoxFuture<'static, Result<Verdict, Failure>>;
}

/// What the backend decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// The Faye error to reply with.
    Deny(String),
}

/// Why no decision came back; the mount's failure policy decides what follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection to the backend, or it closed one mid-answer.
    Unreachable,
    /// No whole answer within the timeout (a hung or trickling backend).
    Timeout,
    /// A status other than 2xx, 401 or 403.
    Status(u16),
    /// A body longer than [`MAX_ANSWER`].
    TooLarge,
    /// A body that is not a JSON object with a boolean `allow`.
    BadAnswer,
}

impl Failure {
    /// For logs and metrics labels: never includes what the backend sent.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Unreachable => "unreachable",
            Failure::Timeout => "timeout",
            Failure::Status(_) => "status",
            Failure::TooLarge => "too_large",
            Failure::BadAnswer => "bad_answer",
        }
    }
}

/// What the hook is asked about: the message's meta channel (or a publish's channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Handshake,
    Subscribe,
    Publish,
}

/// A question, without its clientId: the same bytes for the same credentials and channel,
/// which is what the cache keys on.
pub struct Question {
    /// The JSON object so far, open (no closing brace).
    text: Vec<u8>,
}

impl Question {
    /// Describes a message to the backend. `channel` is the message's channel (a meta channel
    /// or the publish's), `subscription` a subscribe's as the client sent it, `ext` the
    /// message's `ext` as sent, `headers` the forwarded request headers (lower-case names).
    pub fn new(
        mount: &str,
        channel: &str,
        subscription: Option<Value>,
        ext: Option<Value>,
        headers: &[(String, String)],
        address: Option<IpAddr>,
    ) -> Question {
        let mut text = Vec::with_capacity(256);
        text.extend_from_slice(b"{\"mount\":");
        write_str(&mut text, mount);
        text.extend_from_slice(b",\"channel\":");
        write_str(&mut text, channel);
        if let Some(s) = subscription {
            text.extend_from_slice(b",\"subscription\":");
            write_value(&mut text, s);
        }
        text.extend_from_slice(b",\"ext\":");
        match ext {
            Some(e) => write_value(&mut text, e),
            None => text.extend_from_slice(b"null"),
        }
        text.extend_from_slice(b",\"headers\":{");
        for (i, (name, value)) in headers.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            write_str(&mut text, name);
            text.push(b':');
            write_str(&mut text, value);
        }
        text.extend_from_slice(b"},\"address\":");
        match address {
            Some(ip) => write_str(&mut text, &ip.to_string()),
            None => text.extend_from_slice(b"null"),
        }
        Question { text }
    }

    /// The cache key: everything but the clientId.
    pub fn key(&self) -> &[u8] {
        &self.text
    }

    /// The request body: the question with its clientId (null for a handshake).
    pub fn body(&self, client_id: Option<&str>) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.text.len() + 48);
        body.extend_from_slice(&self.text);
        body.extend_from_slice(b",\"clientId\":");
        match client_id {
            Some(c) => write_str(&mut body, c),
            None => body.extend_from_slice(b"null"),
        }
        body.push(b'}');
        body
    }
}

/// Reads the backend's answer. `denied` is the error of a denial that names none.
pub fn verdict(status: u16, body: &[u8], denied: &str) -> Result<Verdict, Failure> {
    if body.len() > MAX_ANSWER {
        return Err(Failure::TooLarge);
    }
    let refusal_status = status == 401 || status == 403;
    if !(200..300).contains(&status) && !refusal_status {
        return Err(Failure::Status(status));
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let object = parsed.as_ref().and_then(|v| v.as_object());
    let error = || {
        let text = object
            .and_then(|o| o.get("error"))
            .and_then(|e| e.as_str())
            .filter(|e| !e.is_empty())
            .unwrap_or(denied);
        Verdict::Deny(cut(text))
    };
    if refusal_status {
        return Ok(error());
    }
    match object
        .and_then(|o| o.get("allow"))
        .and_then(|a| a.as_bool())
    {
        Some(true) => Ok(Verdict::Allow),
        Some(false) => Ok(error()),
        None => Err(Failure::BadAnswer),
    }
}

/// At most [`MAX_ERROR`] bytes, cut on a character boundary.
fn cut(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// A mount's recent allow decisions, shared by its workers, so a reconnect storm (the same
/// clients handshaking and subscribing again with the same credentials) asks the backend once
/// per credentials and channel per TTL. Denials and failures are never cached.
pub struct Cache {
    ttl: Duration,
    entries: Mutex<HashMap<Box<[u8]>, Instant>>,
}

impl Cache {
    /// A cache keeping decisions for `ttl` (zero keeps none).
    pub fn new(ttl: Duration) -> Cache {
        Cache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the backend allowed this question less than the TTL ago.
    pub fn allowed(&self, key: &[u8], now: Instant) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).is_some_and(|until| *until > now)
    }

    /// Remembers an allow decision.
    pub fn allow(&self, key: &[u8], now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, until| *until > now);
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key.into(), now + self.ttl);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bayeux::json::parse_batch;

    #[test]
    fn a_question_carries_the_message_as_sent_and_only_the_named_headers() {
        let mut body =
            br#"[{"channel":"/meta/subscribe","subscription":"/users/42","ext":{"authToken":"t\"1"}}]"#
                .to_vec();
        let batch = parse_batch(&mut body).unwrap();
        let msg = batch.iter().next().unwrap();
        let sub = crate::bayeux::json::field(msg, "subscription");
        let ext = crate::bayeux::json::field(msg, "ext");
        let headers = vec![("cookie".to_owned(), "session=a;b".to_owned())];
        let q = Question::new(
            "/faye",
            "/meta/subscribe",
            sub,
            ext,
            &headers,
            "10.0.0.7".parse().ok(),
        );
        let body = q.body(Some("abc"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"mount": "/faye", "channel": "/meta/subscribe",
                "subscription": "/users/42", "ext": {"authToken": "t\"1"},
                "headers": {"cookie": "session=a;b"}, "address": "10.0.0.7", "clientId": "abc"})
        );
        // The key is the same for another clientId.
        assert!(!q.key().windows(3).any(|w| w == b"abc"));
        let none = Question::new("/faye", "/meta/handshake", None, None, &[], None).body(None);
        let v: serde_json::Value = serde_json::from_slice(&none).unwrap();
        assert_eq!(v["ext"], serde_json::Value::Null);
        assert_eq!(v["clientId"], serde_json::Value::Null);
        assert_eq!(v["headers"], serde_json::json!({}));
    }

    #[test]
    fn answers_allow_deny_or_fail() {
        let d = "403:/users/1:Forbidden";
        assert_eq!(verdict(200, br#"{"allow":true}"#, d), Ok(Verdict::Allow));
        assert_eq!(
            verdict(
                200,
                br#"{"allow":false,"error":"403:/users/42:Not yours"}"#,
                d
            ),
            Ok(Verdict::Deny("403:/users/42:Not yours".into()))
        );
        assert_eq!(
            verdict(200, br#"{"allow":false}"#, d),
            Ok(Verdict::Deny(d.into()))
        );
        assert_eq!(verdict(403, b"nope", d), Ok(Verdict::Deny(d.into())));
        assert_eq!(
            verdict(401, br#"{"error":"401::Log in"}"#, d),
            Ok(Verdict::Deny("401::Log in".into()))
        );
        assert_eq!(
            verdict(500, br#"{"allow":true}"#, d),
            Err(Failure::Status(500))
        );
        assert_eq!(verdict(200, b"<html>", d), Err(Failure::BadAnswer));
        assert_eq!(
            verdict(200, br#"{"allow":"yes"}"#, d),
            Err(Failure::BadAnswer)
        );
        assert_eq!(verdict(200, b"[true]", d), Err(Failure::BadAnswer));
        let huge = vec![b' '; MAX_ANSWER + 1];
        assert_eq!(verdict(200, &huge, d), Err(Failure::TooLarge));
        let long = format!(r#"{{"allow":false,"error":"{}"}}"#, "é".repeat(400));
        match verdict(200, long.as_bytes(), d) {
            Ok(Verdict::Deny(e)) => assert!(e.len() <= MAX_ERROR && e.starts_with('é')),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_cache_keeps_allows_for_its_ttl_only() {
        let now = Instant::now();
        let cache = Cache::new(Duration::from_secs(30));
        assert!(!cache.allowed(b"k", now));
        cache.allow(b"k", now);
        assert!(cache.allowed(b"k", now + Duration::from_secs(29)));
        assert!(!cache.allowed(b"k", now + Duration::from_secs(30)));
        assert!(!cache.allowed(b"other", now));
        let off = Cache::new(Duration::ZERO);
        off.allow(b"k", now);
        assert!(!off.allowed(b"k", now));
        assert!(off.is_empty());
    }

    #[test]
    fn a_full_cache_drops_what_expired_first() {
        let now = Instant::now();
        let cache = Cache::new(Duration::from_secs(1));
        for i in 0..CACHE_ENTRIES {
            cache.allow(&i.to_le_bytes(), now);
        }
        let later = now + Duration::from_secs(2);
        cache.allow(b"new", later);
        assert_eq!(cache.len(), 1);
        assert!(cache.allowed(b"new", later));
    }
}
