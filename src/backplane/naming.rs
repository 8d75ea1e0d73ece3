//! What Bayou puts on Redis, as pure functions: key names and the payload of a publish.
//!
//! Every key of a mount starts with `bayou:<db>:<mount>:`, e.g. `bayou:0:/production/faye:`;
//! the number keeps deployments sharing one Redis apart (and names the database in keys that
//! pub/sub would otherwise share across databases).
//!
//! The mount's log, `<prefix>log`, is a Redis stream: one entry per publish accepted by any
//! process, with the fields `c` (the Bayeux channel), `p` (the payload) and, for a publish its
//! origin already delivered itself while Redis was away, `d`.
//!
//! Payload: a header line, then the message exactly as subscribers receive it:
//! `b1 <origin node, 16 hex digits> <sequence number>\n{"channel":...,"data":...}`.
//! Readers drop a sequence number they have already seen from that origin (a batch whose
//! confirmation was lost with its connection is written again).

/// First word of every payload: the format's version.
const VERSION: &[u8] = b"b1";

/// The prefix of every Redis channel of one mount: `bayou:<db>:<mount>:`.
pub fn mount_prefix(db: i64, mount: &str) -> String {
    format!("bayou:{db}:{mount}:")
}

/// The stream of one mount: every publish accepted by any process, in one order.
pub fn log(prefix: &str) -> String {
    format!("{prefix}log")
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

/// A session's directory entry, a hash: `o` its owner process (16 hex digits) and one field
/// `s:<channel>` per subscription. Written before the handshake or subscribe reply.
pub fn session(prefix: &str, client_id: &str) -> String {
    format!("{prefix}s:{client_id}")
}

/// The directory field of one subscription.
pub fn subscription_field(channel: &str) -> String {
    format!("s:{channel}")
}

/// A process's inbox, a stream read with the mount logs: asks for its sessions, and answers
/// to its own asks. Not per mount (`bayou:<db>:node:<hex>`).
pub fn inbox(db: i64, node: u64) -> String {
    format!("bayou:{db}:node:{node:016x}")
}

/// The live processes of a database: a sorted set of node ids scored by their last heartbeat
/// (ms since the epoch).
pub fn nodes(db: i64) -> String {
    format!("bayou:{db}:nodes")
}

/// A process's liveness key, refreshed every second with a short expiry: while it exists,
/// its sessions are asked for; once it is gone, adopted (`<inbox>:alive`).
pub fn alive(db: i64, node: u64) -> String {
    format!("{}:alive", inbox(db, node))
}

/// A process's checkpoint on one mount (`<prefix>cp:<node>`): a log position at or before
/// every message its clients may not have received, written every second. A process that
/// adopts one of its sessions after a crash replays the log from there.
pub fn checkpoint(prefix: &str, node: u64) -> String {
    format!("{prefix}cp:{node:016x}")
}

/// A node id as the directory and the inboxes write it.
pub fn node_hex(node: u64) -> String {
    format!("{node:016x}")
}

pub fn parse_node(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok().filter(|t| t.len() == 16)?;
    u64::from_str_radix(text, 16).ok()
}

/// A session's queued messages as one field: each message as its length in decimal, a
/// newline, then its bytes.
pub fn encode_queue<'m>(msgs: impl IntoIterator<Item = &'m [u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    for m in msgs {
        let _ = writeln!(out, "{}", m.len());
        out.extend_from_slice(m);
    }
    out
}

pub fn decode_queue(mut blob: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut msgs = Vec::new();
    while !blob.is_empty() {
        let nl = blob.iter().position(|&b| b == b'\n')?;
        let len: usize = std::str::from_utf8(&blob[..nl]).ok()?.parse().ok()?;
        let rest = &blob[nl + 1..];
        if rest.len() < len {
            return None;
        }
        msgs.push(rest[..len].to_vec());
        blob = &rest[len..];
    }
    Some(msgs)
}

/// A log position in one word, ordered as the entries are: the id's milliseconds and its
/// sequence number (capped, so a packed position is never after the entry's own).
pub fn pack(text: &str) -> u64 {
    entry_id(text).map_or(0, |(ms, seq)| (ms << 16) | seq.min(0xffff))
}

/// The id of the entry just before the packed position `pos` (for an exclusive range that
/// starts with the entry at `pos`).
pub fn before_packed(pos: u64) -> String {
    let (ms, seq) = (pos >> 16, pos & 0xffff);
    match (ms, seq) {
        (0, 0) => "0-0".into(),
        (ms, 0) => format!("{}-{}", ms - 1, u64::MAX),
        (ms, seq) => format!("{ms}-{}", seq - 1),
    }
}

/// A stream entry id (`<ms>-<seq>`) as a pair that orders as Redis orders them.
pub fn entry_id(text: &str) -> Option<(u64, u64)> {
    let (ms, seq) = text.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let p = mount_prefix(3, "/production/faye");
        assert_eq!(p, "bayou:3:/production/faye:");
        // A Bayeux channel starts with `/`: the log's name is none of theirs.
        assert_eq!(log(&p), "bayou:3:/production/faye:log");
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

    #[test]
    fn session_keys_and_queues() {
        let p = mount_prefix(0, "/faye");
        assert_eq!(session(&p, "abc"), "bayou:0:/faye:s:abc");
        assert_eq!(subscription_field("/a/*"), "s:/a/*");
        assert_eq!(inbox(2, 0xab), "bayou:2:node:00000000000000ab");
        assert_eq!(alive(2, 0xab), "bayou:2:node:00000000000000ab:alive");
        assert_eq!(checkpoint(&p, 0xab), "bayou:0:/faye:cp:00000000000000ab");
        assert_eq!(
            parse_node(node_hex(0xdead_beef).as_bytes()),
            Some(0xdead_beef)
        );
        assert_eq!(parse_node(b"xyz"), None);
        let msgs: [&[u8]; 3] = [b"{\"a\":1}", b"", b"x\ny"];
        let blob = encode_queue(msgs);
        let back = decode_queue(&blob).unwrap();
        assert_eq!(back, msgs.iter().map(|m| m.to_vec()).collect::<Vec<_>>());
        assert_eq!(decode_queue(b""), Some(Vec::new()));
        assert_eq!(decode_queue(b"5\nab"), None, "short");
        assert_eq!(decode_queue(b"x\nab"), None, "not a length");
        assert!(entry_id("5-2") < entry_id("5-10"));
        assert!(entry_id("10-0") > entry_id("9-99"));
        assert_eq!(entry_id("5"), None);
        assert!(pack("5-2") < pack("5-3") && pack("5-3") < pack("6-0"));
        assert_eq!(pack("5-99999"), pack("5-65535"), "capped, never after");
        assert_eq!(before_packed(pack("5-2")), "5-1");
        assert_eq!(before_packed(pack("5-0")), format!("4-{}", u64::MAX));
        assert_eq!(before_packed(0), "0-0");
    }
}
