//! JSON in and out: parsing a request body into a batch of messages (spec section 3), JS-style
//! truthiness for the fields Faye tests with `if (x)`, and the hand-ordered reply writer.

use simd_json::prelude::*;
use simd_json::tape::Tape;
pub use simd_json::tape::Value;

/// Deepest nesting accepted in a request body; deeper input is refused before parsing, so that
/// neither the parser nor the drop of a value can exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// Why a body was refused as a whole (HTTP 400, or an ignored WebSocket frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    NotJson,
    TooDeep,
    NotObjectOrArray,
    /// More messages than the mount's `max_batch`.
    TooMany,
}

/// Nesting depth of `bytes`, ignoring brackets inside strings; stops counting past `limit`.
/// String contents are skipped with `memchr2` (a Bayeux body is mostly strings), and only
/// the bytes between strings are looked at one by one.
pub fn depth_exceeds(bytes: &[u8], limit: usize) -> bool {
    // Nesting needs an opening bracket per level: a body with no more than `limit` of them in
    // all (in strings too) is within it, which a vectorised count tells without the walk.
    if memchr::memchr2_iter(b'[', b'{', bytes)
        .take(limit + 1)
        .count()
        <= limit
    {
        return false;
    }
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip to the closing quote: past each backslash and the byte it escapes.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[i.min(bytes.len())..]) {
                        None => return false,
                        Some(at) if bytes[i + at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at;
                            break;
                        }
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// A parsed request body: simd-json's tape (one flat list of nodes, no tree of maps to build
/// or to drop), whose root `parse_batch` checked is an array, an object or `null`.
pub struct Batch<'i> {
    tape: Tape<'i>,
}

impl<'i> Batch<'i> {
    /// How many messages (an array's items, whatever they are).
    pub fn len(&self) -> usize {
        let root = self.tape.as_value();
        match root.as_array() {
            Some(items) => items.len(),
            None => usize::from(!root.is_null()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The messages, in order: an array's items, an object alone, none for `null`.
    pub fn iter(&self) -> impl Iterator<Item = Value<'_, 'i>> {
        let root = self.tape.as_value();
        (!root.is_null())
            .then_some(root)
            .into_iter()
            .flat_map(items_or_itself)
    }
}

/// An array's items, or any other value alone: the shape of a batch, a subscription and a
/// handshake's connection types.
pub fn items_or_itself<'t, 'i>(v: Value<'t, 'i>) -> impl Iterator<Item = Value<'t, 'i>> {
    let items = v.as_array();
    let alone = items.is_none().then_some(v);
    alone
        .into_iter()
        .chain(items.into_iter().flat_map(|a| a.iter()))
}

impl Drop for Batch<'_> {
    /// Keeps the tape's allocation for the worker's next parse.
    fn drop(&mut self) {
        let tape = std::mem::replace(&mut self.tape, Tape(Vec::new()));
        if tape.0.capacity() <= KEEP_TAPE {
            SPARE_TAPE.with(|spare| spare.set(tape.reset()));
        }
    }
}

/// Parses `buf` (mutated in place by simd-json) into the list of messages: an object is a batch
/// of one, an array is used as is, `null` is an empty batch; anything else is refused.
pub fn parse_batch(buf: &mut [u8]) -> Result<Batch<'_>, BodyError> {
    if depth_exceeds(buf, MAX_DEPTH) {
        return Err(BodyError::TooDeep);
    }
    let mut tape = SPARE_TAPE
        .with(|spare| spare.replace(Tape(Vec::new())))
        .reset();
    with_buffers(buf.len(), |b| simd_json::fill_tape(buf, b, &mut tape))
        .map_err(|_| BodyError::NotJson)?;
    let root = tape.as_value();
    if !(root.is_array() || root.is_object() || root.is_null()) {
        return Err(BodyError::NotObjectOrArray);
    }
    Ok(Batch { tape })
}

/// Largest tape (in nodes of 24 bytes) a worker keeps for its next parse.
const KEEP_TAPE: usize = 4096;

thread_local! {
    /// The tape of this worker's last parse, emptied, so the next one does not allocate it.
    static SPARE_TAPE: std::cell::Cell<Tape<'static>> = const { std::cell::Cell::new(Tape(Vec::new())) };
}

/// Largest input whose parser scratch a worker keeps between parses; a larger body gets scratch
/// of its own, freed with it, so one big publish does not pin its size in memory for good.
const KEEP_SCRATCH: usize = 64 * 1024;

thread_local! {
    /// This worker's simd-json scratch (input copy, structural indexes, unescaped strings,
    /// stage-2 stack), reused so a warm parse sets none of them up; each grows to the largest
    /// input up to `KEEP_SCRATCH` it has seen.
    static SCRATCH: std::cell::RefCell<simd_json::Buffers> =
        std::cell::RefCell::new(simd_json::Buffers::default());
}

/// Runs `parse` with this worker's scratch, or with fresh scratch for an input larger than
/// `KEEP_SCRATCH` (or if the scratch is somehow in use).
fn with_buffers<T>(len: usize, parse: impl FnOnce(&mut simd_json::Buffers) -> T) -> T {
    if len > KEEP_SCRATCH {
        return parse(&mut simd_json::Buffers::new(len));
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => parse(&mut buffers),
        Err(_) => parse(&mut simd_json::Buffers::new(len)),
    })
}

/// JavaScript truthiness, which is what Faye's `if (message.x)` checks test.
pub fn truthy(v: Value) -> bool {
    match v.value_type() {
        ValueType::Null => false,
        ValueType::Bool => v.as_bool() == Some(true),
        ValueType::I64 => v.as_i64() != Some(0),
        ValueType::U64 => v.as_u64() != Some(0),
        ValueType::F64 => v.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        ValueType::String => v.as_str().is_some_and(|s| !s.is_empty()),
        _ => true,
    }
}

/// A field of a message, when the message is an object and the field is present (where it
/// last appears, if repeated).
pub fn field<'t, 'i>(msg: Value<'t, 'i>, key: &str) -> Option<Value<'t, 'i>> {
    // Of a repeated key the last counts, as in `JSON.parse` and so in Faye; every reader of a
    // message (this, `Reply::for_request`, the router's `scan`) agrees on which one.
    let mut found = None;
    for (k, v) in msg.as_object()?.iter() {
        if k == key {
            found = Some(v);
        }
    }
    found
}

/// A field that is present and truthy.
pub fn truthy_field<'t, 'i>(msg: Value<'t, 'i>, key: &str) -> Option<Value<'t, 'i>> {
    field(msg, key).filter(|v| truthy(*v))
}

/// A string field (present, a string).
pub fn str_field<'i>(msg: Value<'_, 'i>, key: &str) -> Option<&'i str> {
    field(msg, key).and_then(|v| v.into_string())
}

/// The clientId checks of connect, (un)subscribe and disconnect: `401:<id>:Unknown client`
/// unless `exists` knows it, then `402:clientId:...` when it is missing (the later check
/// overwrites the earlier, as in Faye). Returns the clientId when it is a non-empty string.
pub fn check_client<'i>(
    msg: Value<'_, 'i>,
    reply: &mut Reply,
    exists: impl Fn(&str) -> bool,
) -> Option<&'i str> {
    let client_id = str_field(msg, "clientId").filter(|s| !s.is_empty());
    let value = truthy_field(msg, "clientId");
    if !client_id.is_some_and(exists) {
        let shown = value.map(js_string).unwrap_or_default();
        reply.fail(super::Code::ClientUnknown.with(&[&shown]));
    }
    if value.is_none() {
        reply.fail(super::Code::ParameterMissing.with(&["clientId"]));
    }
    client_id
}

/// How a value prints as an error argument: Faye joins its arguments with
/// `Array.prototype.join`, which is `String(v)` except that `null` prints as nothing
/// (`405::Invalid channel` for `"channel": null`).
pub fn js_string(v: Value) -> String {
    if let Some(s) = v.as_str() {
        return s.to_owned();
    }
    if let Some(items) = v.as_array() {
        return items.iter().map(js_string).collect::<Vec<_>>().join(",");
    }
    match v.value_type() {
        ValueType::Null => String::new(),
        ValueType::Object => "[object Object]".into(),
        _ => v.encode(),
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if escape_free(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends any value as JSON.
pub fn write_value(out: &mut Vec<u8>, v: Value) {
    if let Some(s) = v.as_str() {
        return write_str(out, s);
    }
    let _ = v.write(out);
}

/// One reply message. Fields are written in Faye's order:
/// `id, clientId, channel, successful, error`, then `extra` (already-encoded `,"k":v` pairs).
#[derive(Debug, Default, Clone)]
pub struct Reply {
    /// Encoded JSON of the request's truthy `id`.
    pub id: Option<Encoded>,
    /// Encoded JSON of the clientId to echo.
    pub client_id: Option<Encoded>,
    /// Encoded JSON of the request's truthy `channel`.
    pub channel: Option<Encoded>,
    pub successful: bool,
    /// Encoded JSON of the error (a string we made, or whatever the request carried).
    pub error: Option<String>,
    /// Further fields, each written as `,"key":value`.
    pub extra: Vec<u8>,
}

/// Room the first extra field of a reply reserves: a successful handshake's four fields
/// (version, connection types, clientId, advice) take about 230 bytes.
const EXTRA_CAPACITY: usize = 256;

/// A value's JSON text, kept inline when short: an id, a clientId or a channel name fit, so a
/// reply copies them from the request without allocating.
pub type Encoded = smallvec::SmallVec<[u8; ENCODED_INLINE]>;

/// The bytes an [`Encoded`] keeps inline.
const ENCODED_INLINE: usize = 48;

fn encoded(v: Value) -> Encoded {
    let Some(s) = v.as_str() else {
        return Encoded::from_slice(v.encode().as_bytes());
    };
    // A short string with nothing to escape is quoted in a stack buffer that becomes the
    // inline value whole (pushing byte by byte checks the capacity at each step).
    let len = s.len() + 2;
    let mut buf = [0u8; ENCODED_INLINE];
    match buf.get_mut(..len).filter(|_| escape_free(s.as_bytes())) {
        Some(quoted) => {
            quoted[0] = b'"';
            quoted[1..len - 1].copy_from_slice(s.as_bytes());
            quoted[len - 1] = b'"';
            Encoded::from_buf_and_len(buf, len)
        }
        None => {
            let mut out = Vec::with_capacity(len);
            write_str(&mut out, s);
            Encoded::from_vec(out)
        }
    }
}

/// A byte [`write_str`] escapes.
fn needs_escape(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// Whether no byte needs escaping. Every byte is looked at, without stopping at the first
/// hit, so the compiler checks many at a time.
fn escape_free(bytes: &[u8]) -> bool {
    !bytes.iter().fold(false, |any, &b| any | needs_escape(b))
}

impl Reply {
    /// `Server._makeResponse`: copy `id`, `clientId`, `channel` and `error` when truthy.
    pub fn for_request(msg: Value) -> Reply {
        let mut reply = Reply::default();
        let Some(fields) = msg.as_object() else {
            return reply;
        };
        // One pass over the fields rather than a lookup each. Of a repeated key the last
        // counts, as `field` reads it.
        for (key, v) in fields.iter() {
            let slot = match key.as_ref() {
                "id" => 0,
                "clientId" => 1,
                "channel" => 2,
                "error" => 3,
                _ => continue,
            };
            let truthy = truthy(v);
            match slot {
                0 => reply.id = truthy.then(|| encoded(v)),
                1 => reply.client_id = truthy.then(|| encoded(v)),
                2 => reply.channel = truthy.then(|| encoded(v)),
                _ => reply.error = truthy.then(|| v.encode()),
            }
        }
        reply
    }

    /// Sets (overwrites) the error with one of ours.
    pub fn fail(&mut self, error: String) {
        let mut out = Vec::with_capacity(error.len() + 2);
        write_str(&mut out, &error);
        self.error = Some(String::from_utf8_lossy(&out).into_owned());
    }

    /// `successful = !error`, as Faye computes it once the checks have run.
    pub fn settle(&mut self) -> bool {
        self.successful = self.error.is_none();
        self.successful
    }

    /// Appends `,"key":<raw json>` to the extra fields.
    pub fn push_raw(&mut self, key: &str, raw_json: &[u8]) {
        self.push_key(key, raw_json.len());
        self.extra.extend_from_slice(raw_json);
    }

    /// Appends `,"key":<value as JSON>` to the extra fields.
    pub fn push_value(&mut self, key: &str, value: Value) {
        self.push_key(key, value.as_str().map_or(0, str::len));
        write_value(&mut self.extra, value);
    }

    /// Appends `,"key":"<value>"` to the extra fields.
    pub fn push_str(&mut self, key: &str, value: &str) {
        self.push_key(key, value.len() + 2);
        write_str(&mut self.extra, value);
    }

    /// Appends `,"key":` with room for a value of about `value_len` bytes. The first field
    /// takes room for a few more, so a reply with several (a handshake's) allocates once.
    fn push_key(&mut self, key: &str, value_len: usize) {
        // `,"key":` plus the value.
        let needed = key.len() + value_len + 4;
        if self.extra.capacity() == 0 {
            self.extra.reserve(needed.max(EXTRA_CAPACITY));
        } else {
            self.extra.reserve(needed);
        }
        self.extra.push(b',');
        write_str(&mut self.extra, key);
        self.extra.push(b':');
    }

    /// Appends the reply's JSON object to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        self.write_fields(out);
        out.push(b'}');
    }

    /// Appends the reply with one more field last, `,"key":<raw json>`, leaving the reply as
    /// it is (a held connect's advice, chosen when it is answered).
    pub fn write_with(&self, out: &mut Vec<u8>, key: &str, raw_json: &[u8]) {
        self.write_fields(out);
        out.push(b',');
        write_str(out, key);
        out.push(b':');
        out.extend_from_slice(raw_json);
        out.push(b'}');
    }

    /// The object without its closing brace.
    fn write_fields(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        let mut put = |out: &mut Vec<u8>, key: &str, val: &[u8]| {
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(val);
        };
        if let Some(v) = &self.id {
            put(out, "id", v);
        }
        if let Some(v) = &self.client_id {
            put(out, "clientId", v);
        }
        if let Some(v) = &self.channel {
            put(out, "channel", v);
        }
        put(
            out,
            "successful",
            if self.successful { b"true" } else { b"false" },
        );
        if let Some(v) = &self.error {
            put(out, "error", v.as_bytes());
        }
        out.extend_from_slice(&self.extra);
    }
}

/// A reply array written in place: each reply, then each delivered message, is appended once
/// to the buffer that becomes the response body. The buffer is allocated at the first item or
/// [`JsonArray::reserve`], so a batch whose only reply waits (a held connect) sizes it once,
/// when it knows what the connect collected.
#[derive(Debug)]
pub struct JsonArray {
    out: Vec<u8>,
    items: usize,
    /// Bytes to allocate at the first item, unless `reserve` asked for more.
    hint: usize,
}

impl JsonArray {
    /// An empty array that will take room for `bytes` of items once it gets one.
    pub fn expecting(bytes: usize) -> JsonArray {
        JsonArray {
            out: Vec::new(),
            items: 0,
            hint: bytes,
        }
    }

    /// Starts the next item: the buffer to write it into, after a comma when needed.
    pub fn next_item(&mut self) -> &mut Vec<u8> {
        if self.items == 0 {
            self.out.reserve(self.hint + 2);
            self.out.push(b'[');
        } else {
            self.out.push(b',');
        }
        self.items += 1;
        &mut self.out
    }

    /// Appends a reply.
    pub fn push_reply(&mut self, reply: &Reply) {
        reply.write(self.next_item());
    }

    /// Appends an item already encoded (a delivered message).
    pub fn push_raw(&mut self, item: &[u8]) {
        self.next_item().extend_from_slice(item);
    }

    /// Makes room for `bytes` more of items, so that what is known to come is copied once.
    pub fn reserve(&mut self, bytes: usize) {
        if self.items == 0 {
            self.hint = self.hint.max(bytes);
        } else {
            self.out.reserve(bytes);
        }
    }

    /// How many items were appended.
    pub fn len(&self) -> usize {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The array's text.
    pub fn finish(mut self) -> Vec<u8> {
        if self.items == 0 {
            return b"[]".to_vec();
        }
        self.out.push(b']');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_value_is_its_json_inline_or_not() {
        for len in 0..60 {
            for text in ["x".repeat(len), format!("{}\"", "y".repeat(len))] {
                let mut json = Vec::new();
                write_str(&mut json, &text);
                let mut input = json.clone();
                let tape = simd_json::to_tape(&mut input).unwrap();
                assert_eq!(&encoded(tape.as_value())[..], &json[..], "{text:?}");
            }
        }
        for json in ["12", "null", "true", r#"{"a":[1,"b"]}"#] {
            let mut input = json.as_bytes().to_vec();
            let tape = simd_json::to_tape(&mut input).unwrap();
            assert_eq!(&encoded(tape.as_value())[..], json.as_bytes());
        }
    }

    #[test]
    fn a_reply_written_with_a_field_is_the_reply_with_it_pushed() {
        let mut reply = Reply {
            id: Some(Encoded::from_slice(b"\"7\"")),
            client_id: None,
            channel: Some(Encoded::from_slice(b"\"/meta/connect\"")),
            successful: true,
            error: None,
            extra: Vec::new(),
        };
        for extra in [false, true] {
            if extra {
                reply.push_str("x", "y");
            }
            let mut with = Vec::new();
            reply.write_with(&mut with, "advice", br#"{"timeout":0}"#);
            let mut pushed = reply.clone();
            pushed.push_raw("advice", br#"{"timeout":0}"#);
            let mut expected = Vec::new();
            pushed.write(&mut expected);
            assert_eq!(
                String::from_utf8(with).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    /// The deepest nesting of `bytes`, one byte at a time (how `depth_exceeds` used to
    /// count), as the oracle of the test below.
    fn max_depth_bytewise(bytes: &[u8]) -> usize {
        let (mut depth, mut deepest, mut in_str, mut escaped) = (0usize, 0, false, false);
        for &b in bytes {
            if escaped {
                escaped = false;
            } else if in_str {
                escaped = b == b'\\';
                in_str = b != b'"';
            } else if b == b'"' {
                in_str = true;
            } else if b == b'[' || b == b'{' {
                depth += 1;
                deepest = deepest.max(depth);
            } else if b == b']' || b == b'}' {
                depth = depth.saturating_sub(1);
            }
        }
        deepest
    }

    #[test]
    fn depth_skips_strings_like_the_bytewise_count() {
        use rand::{Rng, SeedableRng};
        let alphabet = b"[]{}\"\\a";
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..24);
            let body: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            for limit in [0, 1, 2, 3] {
                assert_eq!(
                    depth_exceeds(&body, limit),
                    max_depth_bytewise(&body) > limit,
                    "{:?} limit {limit}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
        assert!(depth_exceeds(br#"[[["]]]\""]"#, 2));
        assert!(!depth_exceeds(br#"["[[[[\"[[["]"#, 2));
    }

    fn reply_for(body: &str) -> String {
        let mut b = body.as_bytes().to_vec();
        let msgs = parse_batch(&mut b).unwrap();
        let mut out = Vec::new();
        Reply::for_request(msgs.iter().next().unwrap()).write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reply_copies_fields_short_long_and_escaped() {
        assert_eq!(
            reply_for(r#"{"id":"a\"b","clientId":"c\u0001","channel":"/x","data":1}"#),
            r#"{"id":"a\"b","clientId":"c\u0001","channel":"/x","successful":false}"#
        );
        let long = "y".repeat(100);
        assert_eq!(
            reply_for(&format!(r#"{{"id":5,"channel":"/{long}"}}"#)),
            format!(r#"{{"id":5,"channel":"/{long}","successful":false}}"#)
        );
        assert_eq!(
            reply_for(r#"{"id":[1,{"a":null}],"channel":"/x"}"#),
            r#"{"id":[1,{"a":null}],"channel":"/x","successful":false}"#
        );
    }

    fn parse(s: &str) -> Result<usize, BodyError> {
        let mut b = s.as_bytes().to_vec();
        parse_batch(&mut b).map(|v| v.len())
    }

    #[test]
    fn batches() {
        assert_eq!(parse("null"), Ok(0));
        assert_eq!(parse("[]"), Ok(0));
        assert_eq!(parse("{}"), Ok(1));
        assert_eq!(parse("[null,1,\"x\",[],true]"), Ok(5));
        assert_eq!(parse("1"), Err(BodyError::NotObjectOrArray));
        assert_eq!(parse("\"str\""), Err(BodyError::NotObjectOrArray));
        assert_eq!(parse("[ }"), Err(BodyError::NotJson));
        assert_eq!(parse(""), Err(BodyError::NotJson));
        assert_eq!(parse("\u{feff}[]"), Err(BodyError::NotJson));
        assert_eq!(parse(&"[".repeat(100_000)), Err(BodyError::TooDeep));
        assert_eq!(parse(&format!("[\"{}\"]", "[".repeat(1000))), Ok(1));
    }

    /// The worker's reused scratch gives the same values whatever was parsed before it: after a
    /// failed parse, after a larger input, and around an input too large to keep scratch for.
    #[test]
    fn reused_scratch_parses_alike() {
        let big = format!(
            r#"[{{"data":"{}","k":"a\"b"}}]"#,
            "x".repeat(KEEP_SCRATCH + 1)
        );
        let mid = format!(r#"[{{"data":"{}"}},{{}}]"#, "y\\n".repeat(2000));
        for input in [
            mid.as_str(),
            "[ }",
            big.as_str(),
            r#"{"s":"\u00e9","n":[1,2]}"#,
        ] {
            let mut reused = input.as_bytes().to_vec();
            let mut fresh = input.as_bytes().to_vec();
            let expected = simd_json::to_borrowed_value(&mut fresh).map(|v| match v {
                simd_json::BorrowedValue::Array(items) => {
                    items.iter().map(|v| v.encode()).collect()
                }
                other => vec![other.encode()],
            });
            let got =
                parse_batch(&mut reused).map(|b| b.iter().map(|v| v.encode()).collect::<Vec<_>>());
            match (got, expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(e), Err(_)) => assert_eq!(e, BodyError::NotJson),
                (got, want) => panic!("{input:.40}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn reply_takes_a_repeated_field_where_it_last_appears() {
        // As JSON.parse (and so Faye) reads it.
        let mut body =
            br#"{"id":"1","channel":"/a","id":"2","channel":"/b","clientId":"c","clientId":0}"#
                .to_vec();
        let tape = simd_json::to_tape(&mut body).unwrap();
        let msg = tape.as_value();
        let reply = Reply::for_request(msg);
        assert_eq!(
            field(msg, "id").and_then(|v| v.into_string()),
            Some("2"),
            "as field finds it"
        );
        assert_eq!(reply.id.as_deref(), Some(&br#""2""#[..]));
        assert_eq!(reply.channel.as_deref(), Some(&br#""/b""#[..]));
        // The last clientId is falsy, so none is echoed.
        assert_eq!(reply.client_id, None);
    }

    #[test]
    fn reply_order_and_truthiness() {
        let mut b = br#"{"id":0,"clientId":"c","channel":"/a","error":""}"#.to_vec();
        let tape = simd_json::to_tape(&mut b).unwrap();
        let v = tape.as_value();
        let mut r = Reply::for_request(v);
        r.settle();
        let mut out = Vec::new();
        r.write(&mut out);
        assert_eq!(out, br#"{"clientId":"c","channel":"/a","successful":true}"#);
        r.fail("401:c:Unknown client".into());
        r.settle();
        out.clear();
        r.write(&mut out);
        assert_eq!(
            out,
            br#"{"clientId":"c","channel":"/a","successful":false,"error":"401:c:Unknown client"}"#
        );
    }

    #[test]
    fn arrays() {
        assert_eq!(JsonArray::expecting(0).finish(), b"[]");
        let mut array = JsonArray::expecting(4);
        array.push_reply(&Reply::default());
        array.push_raw(br#"{"a":1}"#);
        array.next_item().extend_from_slice(b"2");
        assert_eq!(array.len(), 3);
        assert_eq!(
            array.finish(),
            br#"[{"successful":false},{"a":1},2]"#.to_vec()
        );
        // Room asked for before the first item is taken in one allocation with it.
        let mut array = JsonArray::expecting(4);
        array.reserve(300);
        array.push_raw(b"1");
        assert!(array.out.capacity() >= 302);
        array.reserve(10);
        array.push_raw(b"2");
        assert_eq!(array.finish(), b"[1,2]");
    }

    #[test]
    fn string_escapes() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\n\u{1}\u{2028}");
        assert_eq!(out, "\"a\\\"b\\\\c\\n\\u0001\u{2028}\"".as_bytes());
    }

    #[test]
    fn control_characters_are_escaped_as_json_stringify_does() {
        // node -e 'let s="";for(let i=0;i<32;i++)s+=String.fromCharCode(i);console.log(JSON.stringify(s))'
        let node = concat!(
            r#""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r"#,
            r#"\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018"#,
            r#"\u0019\u001a\u001b\u001c\u001d\u001e\u001f""#,
        );
        let all: String = (0u8..32).map(char::from).collect();
        let mut out = Vec::new();
        write_str(&mut out, &all);
        assert_eq!(String::from_utf8(out).unwrap(), node);
    }

    #[test]
    fn one_escaped_byte_anywhere_is_escaped() {
        // Lengths across the widths the all-bytes check may run at, each escaped byte at every
        // position: the output parses back to the input.
        for len in 1..70 {
            for at in 0..len {
                for b in ['"', '\\', '\n', '\u{1f}', '\u{0}'] {
                    let mut text: String = "a".repeat(len);
                    text.replace_range(at..at + 1, &b.to_string());
                    let mut out = Vec::new();
                    write_str(&mut out, &text);
                    let mut back = out.clone();
                    let tape = simd_json::to_tape(&mut back).unwrap();
                    let parsed = tape.as_value();
                    assert_eq!(parsed.as_str(), Some(&text[..]), "{len} {at} {b:?}");
                    assert_eq!(
                        out.len(),
                        len + 2 + if b < ' ' && b != '\n' { 5 } else { 1 }
                    );
                }
            }
        }
    }
}
