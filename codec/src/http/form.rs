//! `application/x-www-form-urlencoded` bodies and query strings, decoded the way Node's
//! `URLSearchParams` does it, plus Faye's JSON-P callback rules.

use std::borrow::Cow;

/// Value of the FIRST occurrence of `name` in a urlencoded string (pairs split on '&', key and
/// value split on the first '='; a pair without '=' has value ""). Keys and values are decoded:
/// '+' -> space, %XX -> byte (a malformed % sequence is kept literally), then bytes -> UTF-8
/// with invalid sequences replaced by U+FFFD. Empty pairs (`&&`) are skipped.
pub fn param(input: &[u8], name: &str) -> Option<String> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .find_map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (pair.get(..eq)?, pair.get(eq + 1..)?),
                None => (pair, &[][..]),
            };
            (decode_str(key) == name).then(|| decode_str(value).into_owned())
        })
}

/// Percent-decodes `input`, turning '+' into a space; a '%' not followed by two hex digits
/// is kept as it is.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        i += 1;
        match b {
            b'+' => out.push(b' '),
            b'%' => match hex_pair(input.get(i..i + 2)) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            _ => out.push(b),
        }
    }
    out
}

/// Faye's JSON-P callback check: ^[a-z_$][a-z0-9_$]*(\.[a-z_$][a-z0-9_$]*)*$ case-insensitively (ASCII only).
pub fn valid_jsonp_callback(name: &str) -> bool {
    name.split('.').all(|part| {
        let mut chars = part.bytes();
        let starts_well = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b'$');
        starts_well && chars.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$')
    })
}

/// Replaces U+2028 and U+2029 with the six-character escapes \u2028 and \u2029 (JSON-P bodies).
pub fn jsonp_escape(json: &str) -> Cow<'_, str> {
    if !json.contains(['\u{2028}', '\u{2029}']) {
        return Cow::Borrowed(json);
    }
    Cow::Owned(
        json.replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029"),
    )
}

/// Decodes a key or value, borrowing when there is nothing to decode.
fn decode_str(raw: &[u8]) -> Cow<'_, str> {
    if !raw.iter().any(|&b| b == b'+' || b == b'%') {
        return String::from_utf8_lossy(raw);
    }
    Cow::Owned(String::from_utf8_lossy(&percent_decode(raw)).into_owned())
}

fn hex_pair(pair: Option<&[u8]>) -> Option<u8> {
    let &[hi, lo] = pair? else {
        return None;
    };
    Some(hex_digit(hi)? << 4 | hex_digit(lo)?)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_and_percent() {
        assert_eq!(
            param(b"message=a+b%2Bc", "message").as_deref(),
            Some("a b+c")
        );
        assert_eq!(percent_decode(b"a+b%2Bc%2f"), b"a b+c/".to_vec());
    }

    #[test]
    fn first_occurrence_wins() {
        let body = b"x=1&message=%5B%5D&message=second";
        assert_eq!(param(body, "message").as_deref(), Some("[]"));
        assert_eq!(param(body, "x").as_deref(), Some("1"));
    }

    #[test]
    fn missing_and_valueless() {
        assert_eq!(param(b"a=1&b=2", "message"), None);
        assert_eq!(param(b"", "message"), None);
        assert_eq!(param(b"&&message&x=1", "message").as_deref(), Some(""));
        assert_eq!(param(b"message=", "message").as_deref(), Some(""));
        assert_eq!(param(b"message=a=b", "message").as_deref(), Some("a=b"));
        assert_eq!(param(b"&&", ""), None);
        assert_eq!(param(b"=x", "").as_deref(), Some("x"));
    }

    #[test]
    fn keys_are_decoded_too() {
        assert_eq!(param(b"mess%61ge=1", "message").as_deref(), Some("1"));
        assert_eq!(param(b"a+b=1", "a b").as_deref(), Some("1"));
    }

    #[test]
    fn malformed_percent_is_kept() {
        assert_eq!(param(b"m=%zz", "m").as_deref(), Some("%zz"));
        assert_eq!(param(b"m=%4", "m").as_deref(), Some("%4"));
        assert_eq!(param(b"m=%", "m").as_deref(), Some("%"));
        assert_eq!(param(b"m=%%41", "m").as_deref(), Some("%A"));
        assert_eq!(percent_decode(b"%G1%1"), b"%G1%1".to_vec());
    }

    #[test]
    fn invalid_utf8_becomes_replacement() {
        assert_eq!(param(b"m=a%FFb", "m").as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(param(b"m=\xC3", "m").as_deref(), Some("\u{FFFD}"));
        assert_eq!(param(b"m=%C3%A9", "m").as_deref(), Some("\u{e9}"));
    }

    #[test]
    fn jsonp_callbacks() {
        for good in [
            "foo.bar",
            "a.b.$c",
            "_x",
            "$",
            "jsonpcallback",
            "__jsonp1__",
            "A9.Z_",
        ] {
            assert!(valid_jsonp_callback(good), "{good}");
        }
        for bad in [
            "42", "1abc", "a-b", "a.", ".a", "", "a..b", "a b", "a\n", "é", "a()",
        ] {
            assert!(!valid_jsonp_callback(bad), "{bad:?}");
        }
    }

    #[test]
    fn jsonp_escaping() {
        assert!(matches!(jsonp_escape("[\"</script>\"]"), Cow::Borrowed(_)));
        assert_eq!(
            jsonp_escape("[\"a\u{2028}b\u{2029}c\"]"),
            "[\"a\\u2028b\\u2029c\"]"
        );
    }
}
