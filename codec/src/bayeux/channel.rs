//! Channel names and patterns (spec 5.1) and the expansion a publish is routed through (spec 5.4).

fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'!' | b'~' | b'(' | b')' | b'$' | b'@')
}

/// A concrete channel name: `/SEG(/SEG)*`. One pass over the bytes: every `/` must be
/// followed by a segment byte.
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut after_slash = false;
    for &c in b {
        if c == b'/' {
            if after_slash {
                return false;
            }
            after_slash = true;
        } else if is_segment_byte(c) {
            after_slash = false;
        } else {
            return false;
        }
    }
    !after_slash
}

/// A subscription pattern: `(/SEG)*/*` or `(/SEG)*/**`.
pub fn is_pattern(s: &str) -> bool {
    let parent = match s.strip_suffix("/**").or_else(|| s.strip_suffix("/*")) {
        Some(p) => p,
        None => return false,
    };
    parent.is_empty() || is_name(parent)
}

/// A name or a pattern.
pub fn is_valid(s: &str) -> bool {
    is_name(s) || is_pattern(s)
}

fn first_segment(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('/')?;
    rest.get(..memchr::memchr(b'/', rest.as_bytes()).unwrap_or(rest.len()))
}

/// Valid, and the first segment is `meta` (`/meta`, `/meta/x`, `/meta/*`).
pub fn is_meta(s: &str) -> bool {
    first_segment(s) == Some("meta") && is_valid(s)
}

/// Valid, and the first segment is `service`.
pub fn is_service(s: &str) -> bool {
    first_segment(s) == Some("service") && is_valid(s)
}

/// What a remote client may subscribe to: valid, neither meta nor service.
pub fn is_subscribable(s: &str) -> bool {
    is_valid(s) && !is_meta(s) && !is_service(s)
}

/// The wildcard that ends a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wildcard {
    /// `/*`: the parent's direct children.
    One,
    /// `/**`: everything under the parent.
    Many,
}

impl Wildcard {
    pub fn as_str(self) -> &'static str {
        match self {
            Wildcard::One => "/*",
            Wildcard::Many => "/**",
        }
    }
}

/// A pattern seen as its parent (a prefix of some name, `""` for the root) and its wildcard,
/// so that it can be named without building its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern<'a> {
    pub parent: &'a str,
    pub wildcard: Wildcard,
}

impl<'a> Pattern<'a> {
    /// Splits a pattern's text, or None when `s` is not a pattern.
    pub fn parse(s: &'a str) -> Option<Pattern<'a>> {
        if !is_pattern(s) {
            return None;
        }
        let (parent, wildcard) = match s.strip_suffix("/**") {
            Some(parent) => (parent, Wildcard::Many),
            None => (s.strip_suffix("/*")?, Wildcard::One),
        };
        Some(Pattern { parent, wildcard })
    }

    /// The pattern's text, written into `buf` (which is cleared first).
    pub fn write_into<'b>(&self, buf: &'b mut String) -> &'b str {
        buf.clear();
        buf.push_str(self.parent);
        buf.push_str(self.wildcard.as_str());
        buf
    }
}

/// The patterns that receive a publish to `name` besides the name itself: its parent plus
/// `/*`, and every proper prefix plus `/**` (root `/**` included), as slices of `name`.
/// `name` must be a valid name.
pub fn patterns(name: &str) -> impl Iterator<Item = Pattern<'_>> {
    // '/' is ASCII, so every position found is a char boundary.
    let slash = |at: usize| name.get(..at).unwrap_or_default();
    let one = Pattern {
        parent: slash(memchr::memrchr(b'/', name.as_bytes()).unwrap_or(0)),
        wildcard: Wildcard::One,
    };
    let many = memchr::memchr_iter(b'/', name.as_bytes()).map(move |at| Pattern {
        parent: slash(at),
        wildcard: Wildcard::Many,
    });
    std::iter::once(one).chain(many)
}

/// The subscriptions that receive a publish to `name`: the name itself, then its
/// [`patterns`], as text. Allocates; the delivery path uses [`patterns`] instead.
pub fn expand(name: &str) -> Vec<String> {
    let mut out = vec![name.to_owned()];
    let mut buf = String::new();
    out.extend(patterns(name).map(|p| p.write_into(&mut buf).to_owned()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["/a", "/f-_!~()$@/AZaz09", "/foo/bar", "/meta", "/service/x"] {
            assert!(is_name(ok), "{ok}");
        }
        for bad in [
            "",
            "/",
            "foo",
            "//a",
            "/a/",
            "/foo/bar.baz",
            "/föo",
            "/fo o",
            "/a/*",
            "/a%20",
            "/a//b",
        ] {
            assert!(!is_name(bad), "{bad}");
        }
    }

    #[test]
    fn patterns() {
        for ok in ["/*", "/**", "/a/*", "/a/b/**"] {
            assert!(is_pattern(ok), "{ok}");
        }
        for bad in ["/foo/*/bar", "/foo/***", "/foo*", "*", "/a//*", "/a"] {
            assert!(!is_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn meta_and_service() {
        assert!(is_meta("/meta") && is_meta("/meta/foo") && is_meta("/meta/*"));
        assert!(!is_meta("/meta/") && !is_meta("/metax"));
        assert!(is_service("/service/x") && is_service("/service/*"));
        assert!(!is_subscribable("/service/x") && !is_subscribable("/meta/connect"));
        assert!(is_subscribable("/**") && !is_subscribable("/bad.x"));
    }

    #[test]
    fn expansion() {
        let mut e = expand("/a/b/c");
        e.sort();
        let mut want = vec!["/**", "/a/b/c", "/a/b/*", "/a/**", "/a/b/**"];
        want.sort();
        assert_eq!(e, want);
        let mut e = expand("/a");
        e.sort();
        assert_eq!(e, vec!["/*", "/**", "/a"]);
        let mut e = expand("/a/b");
        e.sort();
        assert_eq!(e, vec!["/**", "/a/*", "/a/**", "/a/b"]);
    }

    #[test]
    fn pattern_parts() {
        let found: Vec<_> = super::patterns("/a/b").collect();
        let want = [
            Pattern {
                parent: "/a",
                wildcard: Wildcard::One,
            },
            Pattern {
                parent: "",
                wildcard: Wildcard::Many,
            },
            Pattern {
                parent: "/a",
                wildcard: Wildcard::Many,
            },
        ];
        assert_eq!(found, want);
        let mut buf = String::from("left over");
        for p in want {
            assert_eq!(Pattern::parse(p.write_into(&mut buf)), Some(p));
        }
        assert_eq!(Pattern::parse("/a/b"), None);
        assert_eq!(Pattern::parse("/a/***"), None);
        assert_eq!(Pattern::parse("/*").map(|p| p.parent), Some(""));
    }
}
