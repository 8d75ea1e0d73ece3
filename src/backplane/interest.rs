//! What this process wants from the mount logs: the exact channels and the patterns with local
//! subscribers. Every process reads every entry of a log; this table decides which entries go
//! on to the workers. Pure: the link thread owns one.

use crate::bayeux::channel;
use std::collections::HashSet;

pub struct Interest {
    /// Exact Bayeux channels with local subscribers, per mount.
    channels: Vec<HashSet<Box<str>>>,
    /// Bayeux patterns with local subscribers, per mount.
    patterns: Vec<HashSet<Box<str>>>,
}

impl Interest {
    pub fn new(mounts: usize) -> Interest {
        Interest {
            channels: (0..mounts).map(|_| HashSet::new()).collect(),
            patterns: (0..mounts).map(|_| HashSet::new()).collect(),
        }
    }

    /// This process's interest in a channel or pattern turned on or off; returns whether
    /// that changed anything.
    pub fn change(&mut self, mount: usize, key: &str, on: bool) -> bool {
        let Some(set) = (if channel::is_pattern(key) {
            self.patterns.get_mut(mount)
        } else {
            self.channels.get_mut(mount)
        }) else {
            return false;
        };
        if on {
            set.insert(key.into())
        } else {
            set.remove(key)
        }
    }

    /// Whether a message published to the Bayeux channel `name` of `mount` has a subscriber
    /// here: the channel itself, or a pattern matching it.
    pub fn wants(&self, mount: usize, name: &str) -> bool {
        let (Some(channels), Some(patterns)) = (self.channels.get(mount), self.patterns.get(mount))
        else {
            return false;
        };
        if channels.contains(name) {
            return true;
        }
        let mut key = String::new();
        !patterns.is_empty()
            && channel::patterns(name).any(|p| patterns.contains(p.write_into(&mut key)))
    }

    /// (exact channels, patterns) wanted, over every mount.
    pub fn sizes(&self) -> (usize, usize) {
        let count = |sets: &[HashSet<Box<str>>]| sets.iter().map(HashSet::len).sum();
        (count(&self.channels), count(&self.patterns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_wanted_while_on() {
        let mut i = Interest::new(2);
        assert!(i.change(0, "/a", true));
        assert!(!i.change(0, "/a", true), "already wanted");
        assert!(i.wants(0, "/a"));
        assert!(!i.wants(1, "/a"), "another mount");
        assert!(!i.wants(0, "/a/b"));
        assert!(i.change(0, "/a", false));
        assert!(!i.wants(0, "/a"));
        assert!(!i.change(0, "/a", false), "already off");
        assert!(!i.change(7, "/a", true), "no such mount");
        assert_eq!(i.sizes(), (0, 0));
    }

    #[test]
    fn patterns_match_as_bayeux_patterns_do() {
        let mut i = Interest::new(2);
        i.change(0, "/a/*", true);
        assert!(i.wants(0, "/a/b"));
        assert!(!i.wants(0, "/a/b/c"), "one segment only");
        assert!(!i.wants(1, "/a/b"), "another mount");
        i.change(0, "/a/**", true);
        assert!(i.wants(0, "/a/b/c"));
        i.change(1, "/**", true);
        assert!(i.wants(1, "/x/y/z"));
        assert_eq!(i.sizes(), (0, 3));
        i.change(0, "/a/**", false);
        assert!(!i.wants(0, "/a/b/c"));
        assert!(i.wants(0, "/a/b"));
    }
}
