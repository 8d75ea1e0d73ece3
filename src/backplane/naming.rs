//! What Bayou puts on Redis, as pure functions: the Redis channel of a Bayeux channel, the
//! Redis glob of a Bayeux pattern, and the payload of a published message.
//!
//! Redis channel: `bayou:<db>:<mount>:<channel>`, e.g. `bayou:0:/production/faye:/users/42`.
//! Redis pub/sub ignores database numbers, so the number is part of the name: deployments
//! sharing one Redis stay apart by using different numbers. A Bayeux channel never contains
//! `:`, so the name splits back at its last `:`.
//!
//! Patterns: Redis `*` matches any run of characters, `/` included, so Bayeux `/a/*` (one
//! segment) and `/a/**` (any depth) both become the glob `bayou:<db>:<mount>:/a/*`, and what it
//! lets through is checked against the Bayeux patterns on receipt. Everything before the final
//! `*` is escaped, so glob metacharacters in a mount name match literally.
//!
//! Payload: a header line, then the message exactly as subscribers receive it:
//! `b1 <origin node, 16 hex digits> <sequence number>\n{"channel":...,"data":...}`.
//! The origin skips its own echo; receivers drop a sequence number they have already seen from
//! that origin (one publish may reach a node through a channel and a pattern subscription).

/// First word of every payload: the format's version.
const VERSION: &[u8] = b"b1";

/// The prefix of every Redis channel of one mount: `bayou:<db>:<mount>:`.
pub fn mount_prefix(db: i64, mount: &str) -> String {
    format!("bayou:{db}:{mount}:")
}

/// The Redis channel carrying publishes to the Bayeux channel `name`.
pub fn channel(prefix: &str, name: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + name.len());
    out.push_str(prefix);
    out.push_str(name);
    out
}

/// The Redis glob covering the Bayeux pattern `pattern` (`/a/*` or `/a/**`): a superset, to
/// be filtered with [`crate::bayeux::channel::patterns`] on receipt.
pub fn glob(prefix: &str, pattern: &str) -> String {
    let parent = pattern
        .strip_suffix("/**")
        .or_else(|| pattern.strip_suffix("/*"))
        .unwrap_or(pattern);
    let mut out = String::with_capacity(prefix.len() + parent.len() + 4);
    for c in prefix.chars().chain(parent.chars()) {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push_str("/*");
    out
}

/// Splits a Redis channel into its mount prefix (with the trailing `:`) and Bayeux channel.
pub fn split(redis_channel: &str) -> Option<(&str, &str)> {
    let at = redis_channel.rfind(':')?;
    Some((&redis_channel[..=at], &redis_channel[at + 1..]))
}

/// Appends the payload for `msg` (the delivered form) to `out`.
pub fn encode(node: u64, seq: u64, msg: &[u8], out: &mut Vec<u8>) {
    use std::io::Write;
    out.reserve(msg.len() + 40);
    let _ = writeln!(out, "b1 {node:016x} {seq}");
    out.extend_from_slice(msg);
}

/// A payload's origin node, sequence number and where the message starts; None when it is not
/// one of Bayou's.
pub fn decode(payload: &[u8]) -> Option<(u64, u64, usize)> {
    let end = payload.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&payload[..end]).ok()?;
    let mut words = header.split(' ');
    if words.next()?.as_bytes() != VERSION {
        return None;
    }
    let node = words.next().filter(|w| w.len() == 16)?;
    let node = u64::from_str_radix(node, 16).ok()?;
    let seq = words.next()?.parse().ok()?;
    if words.next().is_some() {
        return None;
    }
    Some((node, seq, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        let p = mount_prefix(3, "/production/faye");
        assert_eq!(p, "bayou:3:/production/faye:");
        let c = channel(&p, "/users/42");
        assert_eq!(c, "bayou:3:/production/faye:/users/42");
        assert_eq!(split(&c), Some((p.as_str(), "/users/42")));
        // A mount may contain `:`; a Bayeux channel never does.
        let p = mount_prefix(0, "/a:b");
        assert_eq!(split(&channel(&p, "/x")), Some((p.as_str(), "/x")));
        assert_eq!(split("no-colon"), None);
    }

    #[test]
    fn globs_cover_patterns_and_escape_the_rest() {
        let p = mount_prefix(0, "/faye");
        assert_eq!(glob(&p, "/a/b/*"), "bayou:0:/faye:/a/b/*");
        assert_eq!(glob(&p, "/a/b/**"), "bayou:0:/faye:/a/b/*");
        assert_eq!(glob(&p, "/*"), "bayou:0:/faye:/*");
        assert_eq!(glob(&p, "/**"), "bayou:0:/faye:/*");
        let p = mount_prefix(0, "/f*a?y[e]\\");
        assert_eq!(glob(&p, "/x/*"), "bayou:0:/f\\*a\\?y\\[e\\]\\\\:/x/*");
    }

    #[test]
    fn payloads_round_trip_and_reject_strangers() {
        let mut out = Vec::new();
        encode(0xab, 7, br#"{"channel":"/a","data":1}"#, &mut out);
        assert_eq!(
            out,
            b"b1 00000000000000ab 7\n{\"channel\":\"/a\",\"data\":1}".to_vec()
        );
        let (node, seq, at) = decode(&out).unwrap();
        assert_eq!((node, seq), (0xab, 7));
        assert_eq!(&out[at..], br#"{"channel":"/a","data":1}"#);
        for bad in [
            &b"hello"[..],
            b"b1 00000000000000ab\n{}",
            b"b2 00000000000000ab 7\n{}",
            b"b1 ab 7\n{}",
            b"b1 00000000000000ab x\n{}",
            b"b1 00000000000000ab 7 8\n{}",
            b"",
        ] {
            assert_eq!(decode(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
