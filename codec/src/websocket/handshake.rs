//! The HTTP side of a WebSocket upgrade (RFC 6455 §4.2), with the refusals Faye sends.
//!
//! Takes header values already found by the HTTP parser and decides; writes nothing itself.

use tungstenite::handshake::derive_accept_key;

/// Sec-WebSocket-Version values accepted, as faye-websocket's hybi driver does.
const VERSIONS: [&[u8]; 3] = [b"13", b"8", b"7"];

/// Why an upgrade request is refused; each is answered with a 400 and a text/plain body.
#[derive(Debug, PartialEq, Eq)]
pub enum UpgradeRefusal {
    NotWebSocket,
    UnsupportedVersion(String),
    MissingKey,
}

impl UpgradeRefusal {
    /// HTTP status of every refusal.
    pub const STATUS: u16 = 400;

    /// The text/plain body Faye sends with the 400 status.
    pub fn body(&self) -> String {
        match self {
            UpgradeRefusal::NotWebSocket => "Not a WebSocket request".to_string(),
            UpgradeRefusal::UnsupportedVersion(version) => {
                format!("Unsupported WebSocket version: {version}")
            }
            UpgradeRefusal::MissingKey => "Missing Sec-WebSocket-Key header".to_string(),
        }
    }
}

/// True when the request asks for an upgrade at all: a `Connection` header containing the token
/// `upgrade` (comma-separated list, case-insensitive) or any `Upgrade` header present.
pub fn wants_upgrade(connection: Option<&[u8]>, upgrade: Option<&[u8]>) -> bool {
    let upgrade_token = connection.is_some_and(|value| {
        value
            .split(|&byte| byte == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    });
    upgrade_token || upgrade.is_some()
}

/// Validates an upgrade request and returns the Sec-WebSocket-Accept value.
pub fn accept(
    upgrade: Option<&[u8]>,
    version: Option<&[u8]>,
    key: Option<&[u8]>,
) -> Result<String, UpgradeRefusal> {
    let is_websocket =
        upgrade.is_some_and(|value| value.trim_ascii().eq_ignore_ascii_case(b"websocket"));
    if !is_websocket {
        return Err(UpgradeRefusal::NotWebSocket);
    }
    let version = version.map_or(&b""[..], <[u8]>::trim_ascii);
    if !VERSIONS.contains(&version) {
        let text = String::from_utf8_lossy(version).into_owned();
        return Err(UpgradeRefusal::UnsupportedVersion(text));
    }
    match key.map(<[u8]>::trim_ascii) {
        Some(key) if !key.is_empty() => Ok(derive_accept_key(key)),
        _ => Err(UpgradeRefusal::MissingKey),
    }
}

/// The 101 response. Never includes Sec-WebSocket-Protocol or Sec-WebSocket-Extensions: Faye
/// declines both. Built at its exact size, so `Bytes` can take it without a shared header.
pub fn response_101(accept: &str) -> Vec<u8> {
    const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Accept: ";
    const END: &[u8] = b"\r\n\r\n";
    let mut out = Vec::with_capacity(HEAD.len() + accept.len() + END.len());
    out.extend_from_slice(HEAD);
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(END);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    #[test]
    fn rfc_accept_key_example() {
        let accepted = accept(Some(b"websocket"), Some(b"13"), Some(KEY));
        assert_eq!(accepted, Ok(ACCEPT.to_string()));
    }

    #[test]
    fn wants_upgrade_reads_connection_tokens() {
        assert!(wants_upgrade(Some(b"Upgrade"), None));
        assert!(wants_upgrade(Some(b"keep-alive, UPGRADE"), None));
        assert!(wants_upgrade(Some(b"keep-alive,upgrade ,close"), None));
        assert!(wants_upgrade(None, Some(b"h2c")));
        assert!(wants_upgrade(Some(b"close"), Some(b"")));
        assert!(!wants_upgrade(Some(b"keep-alive"), None));
        assert!(!wants_upgrade(Some(b"upgraded, no-upgrade"), None));
        assert!(!wants_upgrade(Some(b""), None));
        assert!(!wants_upgrade(None, None));
    }

    #[test]
    fn upgrade_must_be_websocket() {
        for upgrade in [None, Some(&b"h2c"[..]), Some(b""), Some(b"websockets")] {
            assert_eq!(
                accept(upgrade, Some(b"13"), Some(KEY)),
                Err(UpgradeRefusal::NotWebSocket)
            );
        }
        assert!(accept(Some(b"WebSocket"), Some(b"13"), Some(KEY)).is_ok());
    }

    #[test]
    fn versions_13_8_7_are_accepted() {
        for version in [&b"13"[..], b"8", b"7"] {
            assert_eq!(
                accept(Some(b"websocket"), Some(version), Some(KEY)),
                Ok(ACCEPT.to_string())
            );
        }
        let refused = |version: Option<&[u8]>| accept(Some(b"websocket"), version, Some(KEY));
        assert_eq!(
            refused(Some(b"12")),
            Err(UpgradeRefusal::UnsupportedVersion("12".into()))
        );
        assert_eq!(
            refused(None),
            Err(UpgradeRefusal::UnsupportedVersion(String::new()))
        );
        assert_eq!(
            refused(Some(b"\xff")),
            Err(UpgradeRefusal::UnsupportedVersion("\u{fffd}".into()))
        );
    }

    #[test]
    fn key_must_be_present() {
        assert_eq!(
            accept(Some(b"websocket"), Some(b"13"), None),
            Err(UpgradeRefusal::MissingKey)
        );
        assert_eq!(
            accept(Some(b"websocket"), Some(b"13"), Some(b"")),
            Err(UpgradeRefusal::MissingKey)
        );
    }

    #[test]
    fn refusal_bodies_match_faye() {
        assert_eq!(
            UpgradeRefusal::NotWebSocket.body(),
            "Not a WebSocket request"
        );
        let version = UpgradeRefusal::UnsupportedVersion("12".into());
        assert_eq!(version.body(), "Unsupported WebSocket version: 12");
        assert_eq!(
            UpgradeRefusal::MissingKey.body(),
            "Missing Sec-WebSocket-Key header"
        );
        assert_eq!(UpgradeRefusal::STATUS, 400);
    }

    #[test]
    fn response_101_bytes() {
        let expected = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                        Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(response_101(ACCEPT), expected.as_bytes());
    }
}
