//! The entries of a process's inbox: what one process writes to another (an ask, a give, a
//! relayed request or its reply, a presence question or answer), and how an entry is read.

use super::naming;

/// An inbox nobody reads any more goes after this.
pub(super) const INBOX_TTL_MS: u64 = 3600 * 1000;
/// Entries kept in an inbox (the reader is never far behind).
pub(super) const INBOX_LENGTH: usize = 10_000;

/// An entry of an inbox, as read.
#[derive(Debug, Default)]
pub(super) struct Letter {
    pub(super) kind: Vec<u8>,
    pub(super) token: u64,
    pub(super) client_id: String,
    pub(super) mount: String,
    /// The sending process.
    pub(super) from: u64,
    pub(super) cut: String,
    pub(super) subscriptions: Vec<String>,
    pub(super) queue: Vec<u8>,
    /// A log position at or before every message of `queue` (0: none given).
    pub(super) since: u64,
    /// A relayed request's body (`ask`) or its reply (`res`).
    pub(super) body: Option<Vec<u8>>,
    /// A relayed request's client address and publish-secret flag.
    pub(super) ip: Option<std::net::IpAddr>,
    pub(super) bearer: bool,
    /// A relayed request's headers for the authorisation hook: name and value, each pair on
    /// two lines (header values hold no line breaks).
    pub(super) forwarded: Option<String>,
    /// A presence answer's count (`pa`).
    pub(super) count: u64,
}

impl Letter {
    pub(super) fn read(fields: Vec<(Vec<u8>, Vec<u8>)>) -> Letter {
        let mut l = Letter::default();
        for (k, v) in fields {
            let text = || String::from_utf8(v.clone()).unwrap_or_default();
            match &k[..] {
                b"k" => l.kind = v,
                b"t" => l.token = text().parse().unwrap_or(0),
                b"c" => l.client_id = text(),
                b"m" => l.mount = text(),
                b"r" => l.from = naming::parse_node(&v).unwrap_or(0),
                b"p" => l.cut = text(),
                b"b" => l.body = Some(v.clone()),
                b"i" => l.ip = text().parse().ok(),
                b"a" => l.bearer = v == b"1",
                b"h" => l.forwarded = Some(text()),
                b"n" => l.count = text().parse().unwrap_or(0),
                b"s" => {
                    l.subscriptions = text()
                        .split('\n')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                }
                b"q" => l.queue = v,
                b"u" => l.since = text().parse().unwrap_or(0),
                _ => {}
            }
        }
        l
    }
}

/// Starts an entry of the inbox `inbox` in `pipe` (its fields follow), trimmed to
/// [`INBOX_LENGTH`]; [`sent`] ends it.
pub(super) fn letter<'p>(pipe: &'p mut redis::Pipeline, inbox: &str) -> &'p mut redis::Pipeline {
    (pipe.cmd("XADD").arg(inbox).arg("MAXLEN").arg("~"))
        .arg(INBOX_LENGTH)
        .arg("*")
}

/// Ends an inbox entry begun with [`letter`]: its reply is not read, and an inbox nobody
/// reads any more expires.
pub(super) fn sent(pipe: &mut redis::Pipeline, inbox: &str) {
    pipe.ignore();
    pipe.cmd("PEXPIRE").arg(inbox).arg(INBOX_TTL_MS).ignore();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_reads_its_fields() {
        let f = |k: &str, v: &[u8]| (k.as_bytes().to_vec(), v.to_vec());
        let l = Letter::read(vec![
            f("k", b"give"),
            f("t", b"12"),
            f("c", b"abc"),
            f("m", b"/faye"),
            f("r", naming::node_hex(7).as_bytes()),
            f("p", b"5-1"),
            f("s", b"/a\n/b/*"),
            f("q", &naming::encode_queue([&b"x"[..]])),
        ]);
        assert_eq!(l.kind, b"give");
        assert_eq!((l.token, l.from), (12, 7));
        assert_eq!(
            (l.client_id.as_str(), l.mount.as_str(), l.cut.as_str()),
            ("abc", "/faye", "5-1")
        );
        assert_eq!(l.subscriptions, ["/a", "/b/*"]);
        assert_eq!(naming::decode_queue(&l.queue).unwrap(), [b"x".to_vec()]);
    }
}
