//! A secret from the configuration (`publish_secret`, `token_secret`, `admin_token`, or an
//! `env:NAME` it names): compared in constant time, never printed.

/// A secret from the configuration: compared in constant time, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Constant-time comparison with what a client sent.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        let diff = a
            .iter()
            .zip(b.iter())
            .fold(a.len() ^ b.len(), |acc, (x, y)| acc | usize::from(x ^ y));
        diff == 0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"********\"")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn a_secret_is_never_printed_and_matches_only_itself() {
        assert_eq!(format!("{:?}", Secret::new("x")), "\"********\"");
        assert!(Secret::new("abc").matches("abc"));
        assert!(!Secret::new("abc").matches("abcd"));
        assert!(!Secret::new("abc").matches(""));
    }
}
