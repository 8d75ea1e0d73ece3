//! The messages of a raw batch and each one's own top-level `clientId` and `channel`, found
//! without parsing the body. simd-json parses in place, so the worker that parses a body is the
//! one that must process it: which worker each message belongs to is decided on the raw bytes.
//!
//! Only the top level of each message is read. A `clientId` inside `data` or `ext` is data (the
//! Faye client writes `data` before `clientId`), so each message is routed as if it had come
//! alone. The walk is lenient: it finds structure, it does not validate. What it cannot read
//! ends the walk, and the parser then judges the body.

use std::borrow::Cow;
use std::ops::Range;

/// One message of a batch: where it is in the body, and its top-level fields that route it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    pub span: Range<usize>,
    /// The `clientId` string, unescaped (the last occurrence, as `json::field` reads it).
    pub client_id: Option<Cow<'a, [u8]>>,
    /// The `channel` string is exactly `/meta/connect`: its reply may be held.
    pub connect: bool,
    /// The `channel` string is exactly `/meta/disconnect`.
    pub disconnect: bool,
}

/// Whether a body may name a clientId at all: a top-level `"clientId"` key, or an escape that
/// could spell one. Two vectorised searches, so the common publish (no clientId) pays no walk.
pub fn may_name_client(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"\"clientId\"").is_some()
        || memchr::memmem::find(body, b"\\u").is_some()
}

/// The messages of `body`, in order: an array's items, or an object alone. Yields nothing more
/// once the bytes stop looking like a batch.
pub fn messages(body: &[u8]) -> Messages<'_> {
    Messages {
        b: body,
        at: 0,
        state: State::Start,
    }
}

/// The first top-level clientId among the messages (the session a socket's frame is for).
pub fn first_client_id(body: &[u8]) -> Option<Cow<'_, [u8]>> {
    if !may_name_client(body) {
        return None;
    }
    messages(body).find_map(|m| m.client_id)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    /// Inside the top-level array; `first` until an item has been read.
    Array {
        first: bool,
    },
    Done,
}

pub struct Messages<'a> {
    b: &'a [u8],
    at: usize,
    state: State,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        let item = self.step();
        if item.is_none() {
            self.state = State::Done;
        }
        item
    }
}

impl<'a> Messages<'a> {
    fn step(&mut self) -> Option<Item<'a>> {
        match self.state {
            State::Done => None,
            State::Start => {
                self.ws();
                match self.peek()? {
                    b'[' => {
                        self.at += 1;
                        self.state = State::Array { first: true };
                        self.step()
                    }
                    b'{' => {
                        let item = self.object()?;
                        self.state = State::Done;
                        Some(item)
                    }
                    _ => None,
                }
            }
            State::Array { first } => {
                self.ws();
                if !first {
                    match self.peek()? {
                        b',' => self.at += 1,
                        _ => return None, // `]` or anything else: no more items
                    }
                    self.ws();
                } else if self.peek()? == b']' {
                    return None;
                }
                self.state = State::Array { first: false };
                if self.peek()? == b'{' {
                    self.object()
                } else {
                    let start = self.at;
                    self.skip_value()?;
                    Some(Item {
                        span: start..self.at,
                        client_id: None,
                        connect: false,
                        disconnect: false,
                    })
                }
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// A message object at `self.at` (on its `{`): its span and routing fields.
    fn object(&mut self) -> Option<Item<'a>> {
        let start = self.at;
        self.at += 1;
        let mut client_id = None;
        let mut channel = None;
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
        } else {
            loop {
                self.ws();
                let key = self.string()?;
                self.ws();
                if self.peek()? != b':' {
                    return None;
                }
                self.at += 1;
                self.ws();
                let wanted = match &*unescape(key)? {
                    b"clientId" => Some(&mut client_id),
                    b"channel" => Some(&mut channel),
                    _ => None,
                };
                // Of a repeated key the last counts, as `json::field` reads it.
                match wanted {
                    Some(slot) if self.peek()? == b'"' => {
                        *slot = Some(unescape(self.string()?)?);
                    }
                    Some(slot) => {
                        *slot = None;
                        self.skip_value()?;
                    }
                    None => self.skip_value()?,
                }
                self.ws();
                match self.peek()? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        Some(Item {
            span: start..self.at,
            client_id,
            connect: channel.as_deref() == Some(&b"/meta/connect"[..]),
            disconnect: channel.as_deref() == Some(&b"/meta/disconnect"[..]),
        })
    }

    /// The raw contents of the string at `self.at` (on its opening quote), escapes kept.
    fn string(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let mut i = start;
        loop {
            let at = memchr::memchr2(b'"', b'\\', self.b.get(i..)?)?;
            if self.b[i + at] == b'\\' {
                i += at + 2;
            } else {
                self.at = i + at + 1;
                return Some(&self.b[start..i + at]);
            }
        }
    }

    /// Skips one value of any kind: a string, a nested object or array, or a scalar.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }
}

/// A JSON string's contents with its escapes resolved; borrowed when it has none. `None` for
/// an escape that is not JSON.
fn unescape(raw: &[u8]) -> Option<Cow<'_, [u8]>> {
    if memchr::memchr(b'\\', raw).is_none() {
        return Some(Cow::Borrowed(raw));
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    let s: String = serde_json::from_slice(&quoted).ok()?;
    Some(Cow::Owned(s.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(body: &str) -> Vec<Option<String>> {
        messages(body.as_bytes())
            .map(|m| {
                m.client_id
                    .map(|c| String::from_utf8(c.into_owned()).unwrap())
            })
            .collect()
    }

    #[test]
    fn each_message_has_its_own_top_level_client_id() {
        let body = r#"[{"channel":"/x","data":{"clientId":"B"},"clientId":"A","id":"1"},
                       {"channel":"/meta/connect","clientId":"C"}, null, 5, "s", [1,{"clientId":"D"}],
                       {"ext":{"clientId":"E"},"channel":"/y"}]"#;
        assert_eq!(
            ids(body),
            [
                Some("A".into()),
                Some("C".into()),
                None,
                None,
                None,
                None,
                None
            ]
        );
        let connects: Vec<bool> = messages(body.as_bytes()).map(|m| m.connect).collect();
        assert_eq!(connects, [false, true, false, false, false, false, false]);
        let body = r#"[{"channel":"/meta/disconnect","clientId":"A"},{"channel":"/meta/connect"}]"#;
        let disconnects: Vec<bool> = messages(body.as_bytes()).map(|m| m.disconnect).collect();
        assert_eq!(disconnects, [true, false]);
    }

    #[test]
    fn spans_cover_each_message_exactly() {
        let body = br#" [ {"a":"}"} , {"clientId" : "x\"y"} ,null ] "#;
        let spans: Vec<&[u8]> = messages(body).map(|m| &body[m.span]).collect();
        assert_eq!(
            spans,
            [&br#"{"a":"}"}"#[..], br#"{"clientId" : "x\"y"}"#, b"null"]
        );
        assert_eq!(ids(r#"{"clientId" : "x\"y"}"#), [Some("x\"y".into())]);
    }

    #[test]
    fn escaped_keys_and_values_are_read_as_the_parser_reads_them() {
        assert_eq!(
            ids(r#"[{"client\u0049d":"\u0030ab"}]"#),
            [Some("0ab".into())]
        );
        assert!(
            messages(br#"{"channel":"\/meta\/connect"}"#)
                .next()
                .unwrap()
                .connect
        );
        // The last occurrence counts, as json::field (and JSON.parse) reads it.
        assert_eq!(
            ids(r#"{"clientId":"a","clientId":"b"}"#),
            [Some("b".into())]
        );
        assert_eq!(ids(r#"{"clientId":"a","clientId":5}"#), [None]);
        // A non-string clientId routes nowhere.
        assert_eq!(ids(r#"{"clientId":5}"#), [None]);
    }

    #[test]
    fn the_walk_stops_where_the_bytes_stop_being_a_batch() {
        assert_eq!(ids(r#"[{"clientId":"a"},"#), [Some("a".into())]);
        assert_eq!(
            ids(r#"[{"clientId":"a"} {"clientId":"b"}]"#),
            [Some("a".into())]
        );
        assert_eq!(ids(r#"[{"clientId" "a"}]"#), Vec::<Option<String>>::new());
        assert_eq!(ids("5"), Vec::<Option<String>>::new());
        assert_eq!(ids("[]"), Vec::<Option<String>>::new());
        assert_eq!(
            ids(r#"{"clientId":"unterminated"#),
            Vec::<Option<String>>::new()
        );
        // Input cut at every offset never panics.
        let body =
            br#"[{"channel":"/meta/connect","clientId":"a\u0062","data":{"k":[1,"]"]}},null]"#;
        for cut in 0..body.len() {
            let _ = messages(&body[..cut]).count();
        }
    }

    #[test]
    fn a_body_without_client_id_is_told_without_a_walk() {
        assert!(!may_name_client(
            br#"{"channel":"/a","data":{"text":"hi"}}"#
        ));
        assert!(may_name_client(br#"{"clientId":"a"}"#));
        assert!(may_name_client(br#"{"client\u0049d":"a"}"#));
        assert_eq!(
            first_client_id(br#"[{"data":{"clientId":"b"}},{"clientId":"a"}]"#).as_deref(),
            Some(&b"a"[..])
        );
    }

    /// On every body the parser accepts, the walk finds the messages and clientIds it finds.
    #[test]
    fn the_walk_agrees_with_the_parser() {
        let bodies = [
            r#"[{"channel":"/meta/connect","clientId":"a","advice":{"timeout":0}}]"#,
            r#"{"data":{"clientId":"b","x":[{"clientId":"c"}]},"clientId":"a"}"#,
            r#"[null,false,0,"",{"clientId":""},{"clientId":null},{"id":1e5,"clientId":"\"q\\"}]"#,
            r#" [ { "clientId" : "sp" } , [ ] , { } , -1.5e-3 , true ] "#,
            r#"[{"ext":{"clientId":"e"},"data":"\u00e9\"}","clientId":"\u00e9"}]"#,
            "null",
            "[]",
        ];
        for body in bodies {
            let walked: Vec<Option<String>> = ids(body);
            let mut buf = body.as_bytes().to_vec();
            let batch = crate::bayeux::json::parse_batch(&mut buf).expect(body);
            let parsed: Vec<Option<String>> = batch
                .iter()
                .map(|m| crate::bayeux::json::str_field(m, "clientId").map(str::to_owned))
                .collect();
            assert_eq!(walked, parsed, "{body}");
        }
    }
}
