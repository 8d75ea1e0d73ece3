//! Channel sets as the authorisation rules see them: a name or a pattern is a set of channel
//! names, and a rule asks whether one set covers another (a token naming `/users/42/**` allows a
//! subscription to `/users/42/*`) or meets it (a subscription to `/users/**` reaches the
//! protected `/users/*`, so it needs a token too).

use super::channel;

/// What follows the literal segments of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Nothing: the set is one name.
    Exact,
    /// `/*`: exactly one more segment.
    One,
    /// `/**`: one or more segments.
    Any,
}

/// A valid channel name or pattern, split into literal segments and a tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSet {
    literals: Vec<Box<str>>,
    tail: Tail,
}

impl ChannelSet {
    /// Parses a name (`/a/b`) or pattern (`/a/*`, `/a/**`, `/**`); None when invalid.
    pub fn parse(s: &str) -> Option<ChannelSet> {
        if !channel::is_valid(s) {
            return None;
        }
        let (prefix, tail) = if let Some(p) = s.strip_suffix("/**") {
            (p, Tail::Any)
        } else if let Some(p) = s.strip_suffix("/*") {
            (p, Tail::One)
        } else {
            (s, Tail::Exact)
        };
        let literals = prefix
            .split('/')
            .skip(1)
            .filter(|seg| !seg.is_empty())
            .map(Box::from)
            .collect();
        Some(ChannelSet { literals, tail })
    }

    /// Lengths (in segments) of the names in the set: `min..=max`, `max` None for unbounded.
    fn lengths(&self) -> (usize, Option<usize>) {
        let n = self.literals.len();
        match self.tail {
            Tail::Exact => (n, Some(n)),
            Tail::One => (n + 1, Some(n + 1)),
            Tail::Any => (n + 1, None),
        }
    }

    /// Whether some channel name is in both sets.
    pub fn meets(&self, other: &ChannelSet) -> bool {
        let shared = self.literals.len().min(other.literals.len());
        if self.literals[..shared] != other.literals[..shared] {
            return false;
        }
        let (a_min, a_max) = self.lengths();
        let (b_min, b_max) = other.lengths();
        let low = a_min.max(b_min);
        let high = match (a_max, b_max) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        high.is_none_or(|h| low <= h)
    }

    /// Whether every channel name in `other` is also in `self`.
    pub fn covers(&self, other: &ChannelSet) -> bool {
        let n = self.literals.len();
        if other.literals.len() < n || other.literals[..n] != self.literals[..] {
            return false;
        }
        let extra = other.literals.len() - n;
        match (self.tail, other.tail) {
            (Tail::Exact, Tail::Exact) => extra == 0,
            (Tail::Exact, _) => false,
            (Tail::One, Tail::Exact) => extra == 1,
            (Tail::One, Tail::One) => extra == 0,
            (Tail::One, Tail::Any) => false,
            (Tail::Any, Tail::Exact) => extra >= 1,
            (Tail::Any, _) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> ChannelSet {
        ChannelSet::parse(s).unwrap()
    }

    /// Brute force over a small universe of names, the definition both rules must agree with.
    fn names() -> Vec<String> {
        let segs = ["a", "b", "users", "42"];
        let mut out: Vec<String> = segs.iter().map(|s| format!("/{s}")).collect();
        for _ in 0..3 {
            let longer: Vec<String> = out
                .iter()
                .flat_map(|n| segs.iter().map(move |s| format!("{n}/{s}")))
                .collect();
            out.extend(longer);
        }
        out.sort();
        out.dedup();
        out
    }

    fn contains(set: &str, name: &str) -> bool {
        channel::expand(name).iter().any(|e| e == set)
    }

    #[test]
    fn agrees_with_expansion() {
        let universe = names();
        let sets = [
            "/**",
            "/*",
            "/a",
            "/a/*",
            "/a/**",
            "/a/b",
            "/a/b/*",
            "/a/b/**",
            "/users/*",
            "/users/**",
            "/users/42",
            "/users/42/**",
            "/b/a/*",
            "/a/b/users/42",
        ];
        for x in sets {
            for y in sets {
                let (sx, sy) = (set(x), set(y));
                let meet = universe.iter().any(|n| contains(x, n) && contains(y, n));
                assert_eq!(sx.meets(&sy), meet, "{x} meets {y}");
                let cover = universe
                    .iter()
                    .filter(|n| contains(y, n))
                    .all(|n| contains(x, n));
                // Names deeper than the universe hold no surprises for these sets.
                assert_eq!(sx.covers(&sy), cover, "{x} covers {y}");
            }
        }
    }

    #[test]
    fn invalid_is_none() {
        for bad in ["", "/", "users", "/a/*/b", "/a/***", "/a.b"] {
            assert!(ChannelSet::parse(bad).is_none(), "{bad}");
        }
    }
}
