//! The Bayeux protocol as Faye speaks it, sans-IO: channel grammar, the error table, message
//! parsing and the validation and reply of each meta channel, one file each. Nothing here knows
//! about sockets, workers or time.

pub mod channel;
pub mod channel_set;
pub mod connect;
pub mod disconnect;
pub mod error;
pub mod handshake;
pub mod id;
pub mod json;
pub mod publish;
pub mod scan;
pub mod subscribe;

pub use channel_set::ChannelSet;
pub use error::Code;
pub use handshake::CONNECTION_TYPES;
pub use json::Reply;

use json::Value;

/// Advice on every failed handshake or connect.
pub const ADVICE_HANDSHAKE: &[u8] = br#"{"reconnect":"handshake"}"#;

/// `{"reconnect":"retry","interval":I,"timeout":T}`.
pub fn advice_retry(interval_ms: u64, timeout_ms: u64) -> String {
    format!(r#"{{"reconnect":"retry","interval":{interval_ms},"timeout":{timeout_ms}}}"#)
}

/// A mount's success advice, written once when the worker starts: the mount's timeout and the
/// interval are fixed from then on, so no handshake or connect formats it again.
pub struct Advice {
    /// A handshake's, and a long-polling or WebSocket connect's.
    retry: Box<str>,
    /// An EventSource connect's: the stream reconnects after `timeout`, right away.
    eventsource: Box<str>,
}

impl Advice {
    pub fn new(interval_ms: u64, timeout_ms: u64) -> Advice {
        Advice {
            retry: advice_retry(interval_ms, timeout_ms).into(),
            eventsource: advice_retry(timeout_ms, 0).into(),
        }
    }

    pub fn handshake(&self) -> &[u8] {
        self.retry.as_bytes()
    }

    /// The advice of a successful connect of this kind.
    pub fn connect(&self, eventsource: bool) -> &[u8] {
        if eventsource {
            &self.eventsource
        } else {
            &self.retry
        }
        .as_bytes()
    }
}

/// What a message asks for, from its channel (spec section 4, dispatch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Handshake,
    Connect,
    Subscribe,
    Unsubscribe,
    Disconnect,
    /// Any other `/meta/...` channel: `403:<channel>:Forbidden channel`.
    ForbiddenMeta,
    Publish,
}

pub fn classify(msg: Value) -> Kind {
    match json::str_field(msg, "channel") {
        Some("/meta/handshake") => Kind::Handshake,
        Some("/meta/connect") => Kind::Connect,
        Some("/meta/subscribe") => Kind::Subscribe,
        Some("/meta/unsubscribe") => Kind::Unsubscribe,
        Some("/meta/disconnect") => Kind::Disconnect,
        Some(c) if channel::is_meta(c) => Kind::ForbiddenMeta,
        _ => Kind::Publish,
    }
}

/// The reply to a message on an unknown meta channel.
pub fn forbidden_meta(msg: Value) -> Reply {
    let mut reply = Reply::for_request(msg);
    let name = json::str_field(msg, "channel").unwrap_or_default();
    reply.fail(Code::ChannelForbidden.with(&[name]));
    reply.settle();
    reply
}
