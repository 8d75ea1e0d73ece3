//! What this process wants from Redis (the channels and patterns with local subscribers) and
//! what the current connection is subscribed to; the commands that bring one to the other.
//! Pure: the link thread owns one and sends the commands it computes.

use super::naming;
use crate::bayeux::channel;
use std::collections::{HashMap, HashSet};

/// Subscribe commands to send, each a list of Redis names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Commands {
    pub subscribe: Vec<String>,
    pub unsubscribe: Vec<String>,
    pub psubscribe: Vec<String>,
    pub punsubscribe: Vec<String>,
}

impl Commands {
    pub fn is_empty(&self) -> bool {
        self.subscribe.is_empty()
            && self.unsubscribe.is_empty()
            && self.psubscribe.is_empty()
            && self.punsubscribe.is_empty()
    }
}

pub struct Interest {
    /// `bayou:<db>:<mount>:` per mount index.
    prefixes: Vec<String>,
    /// Redis channels wanted: exact Bayeux channels with local subscribers.
    channels: HashSet<String>,
    /// Redis globs wanted, with the number of Bayeux patterns needing each (`/a/*` and `/a/**`
    /// share one).
    globs: HashMap<String, usize>,
    /// Bayeux patterns with local subscribers, per mount: what a glob's messages must match.
    patterns: Vec<HashSet<Box<str>>>,
    /// What the current connection is subscribed to.
    subscribed: HashSet<String>,
    psubscribed: HashSet<String>,
    /// Names changed since the last [`Interest::commands`].
    dirty: HashSet<String>,
    dirty_globs: HashSet<String>,
}

impl Interest {
    pub fn new(prefixes: Vec<String>) -> Interest {
        Interest {
            patterns: prefixes.iter().map(|_| HashSet::new()).collect(),
            prefixes,
            channels: HashSet::new(),
            globs: HashMap::new(),
            subscribed: HashSet::new(),
            psubscribed: HashSet::new(),
            dirty: HashSet::new(),
            dirty_globs: HashSet::new(),
        }
    }

    /// The mount whose prefix is `prefix`.
    pub fn mount_of(&self, prefix: &str) -> Option<usize> {
        self.prefixes.iter().position(|p| p == prefix)
    }

    pub fn prefix(&self, mount: usize) -> &str {
        &self.prefixes[mount]
    }

    /// This process's interest in a channel or pattern turned on or off. Returns whether it
    /// needs a command (false: a glob already wanted, or still wanted by another pattern).
    pub fn change(&mut self, mount: usize, key: &str, on: bool) -> bool {
        let prefix = &self.prefixes[mount];
        if !channel::is_pattern(key) {
            let name = naming::channel(prefix, key);
            let changed = if on {
                self.channels.insert(name.clone())
            } else {
                self.channels.remove(&name)
            };
            if changed {
                self.dirty.insert(name);
            }
            return changed;
        }
        let glob = naming::glob(prefix, key);
        let changed = if on {
            if !self.patterns[mount].insert(key.into()) {
                return false;
            }
            let n = self.globs.entry(glob.clone()).or_default();
            *n += 1;
            *n == 1
        } else {
            if !self.patterns[mount].remove(key) {
                return false;
            }
            match self.globs.get_mut(&glob) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    self.globs.remove(&glob);
                    true
                }
                None => false,
            }
        };
        if changed {
            self.dirty_globs.insert(glob);
        }
        changed
    }

    /// Whether a message on the Bayeux channel `name` of `mount`, received through a glob,
    /// matches a pattern wanted here (a glob lets more through than a Bayeux pattern).
    pub fn wants(&self, mount: usize, name: &str) -> bool {
        let patterns = &self.patterns[mount];
        let mut key = String::new();
        !patterns.is_empty()
            && channel::patterns(name).any(|p| patterns.contains(p.write_into(&mut key)))
    }

    /// The commands that bring the connection to what is wanted, assumed sent from now on.
    pub fn commands(&mut self) -> Commands {
        let mut out = Commands::default();
        for name in self.dirty.drain() {
            match (
                self.channels.contains(&name),
                self.subscribed.contains(&name),
            ) {
                (true, false) => {
                    self.subscribed.insert(name.clone());
                    out.subscribe.push(name);
                }
                (false, true) => {
                    self.subscribed.remove(&name);
                    out.unsubscribe.push(name);
                }
                _ => {}
            }
        }
        for glob in self.dirty_globs.drain() {
            match (
                self.globs.contains_key(&glob),
                self.psubscribed.contains(&glob),
            ) {
                (true, false) => {
                    self.psubscribed.insert(glob.clone());
                    out.psubscribe.push(glob);
                }
                (false, true) => {
                    self.psubscribed.remove(&glob);
                    out.punsubscribe.push(glob);
                }
                _ => {}
            }
        }
        out
    }

    /// A new connection has no subscriptions: everything wanted is to be subscribed again.
    pub fn reconnected(&mut self) {
        self.subscribed.clear();
        self.psubscribed.clear();
        self.dirty = self.channels.iter().cloned().collect();
        self.dirty_globs = self.globs.keys().cloned().collect();
    }

    /// (Redis channels, Redis globs) wanted.
    pub fn sizes(&self) -> (usize, usize) {
        (self.channels.len(), self.globs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interest() -> Interest {
        Interest::new(vec![
            naming::mount_prefix(0, "/faye"),
            naming::mount_prefix(0, "/other"),
        ])
    }

    #[test]
    fn channels_subscribe_once_and_unsubscribe_when_gone() {
        let mut i = interest();
        assert!(i.change(0, "/a", true));
        assert!(!i.change(0, "/a", true), "already wanted");
        let c = i.commands();
        assert_eq!(c.subscribe, vec!["bayou:0:/faye:/a".to_string()]);
        assert!(i.commands().is_empty(), "nothing new");
        assert!(i.change(0, "/a", false));
        assert_eq!(
            i.commands().unsubscribe,
            vec!["bayou:0:/faye:/a".to_string()]
        );
        // On then off before a command went out: nothing to send.
        i.change(1, "/b", true);
        i.change(1, "/b", false);
        assert!(i.commands().is_empty());
    }

    #[test]
    fn one_and_two_star_patterns_share_a_glob() {
        let mut i = interest();
        assert!(i.change(0, "/a/*", true));
        assert!(!i.change(0, "/a/**", true), "same glob");
        assert_eq!(
            i.commands().psubscribe,
            vec!["bayou:0:/faye:/a/*".to_string()]
        );
        assert!(!i.change(0, "/a/*", false), "still needed by /a/**");
        assert!(i.commands().is_empty());
        assert!(i.change(0, "/a/**", false));
        assert_eq!(
            i.commands().punsubscribe,
            vec!["bayou:0:/faye:/a/*".to_string()]
        );
        assert_eq!(i.sizes(), (0, 0));
    }

    #[test]
    fn received_messages_are_filtered_by_bayeux_patterns() {
        let mut i = interest();
        i.change(0, "/a/*", true);
        assert!(i.wants(0, "/a/b"));
        assert!(
            !i.wants(0, "/a/b/c"),
            "the glob lets it through, /a/* does not"
        );
        assert!(!i.wants(1, "/a/b"), "another mount");
        i.change(0, "/a/**", true);
        assert!(i.wants(0, "/a/b/c"));
        i.change(1, "/**", true);
        assert!(i.wants(1, "/x/y/z"));
    }

    #[test]
    fn a_new_connection_resubscribes_everything() {
        let mut i = interest();
        i.change(0, "/a", true);
        i.change(1, "/b/**", true);
        let _ = i.commands();
        i.reconnected();
        let c = i.commands();
        assert_eq!(c.subscribe, vec!["bayou:0:/faye:/a".to_string()]);
        assert_eq!(c.psubscribe, vec!["bayou:0:/other:/b/*".to_string()]);
        assert_eq!(i.mount_of("bayou:0:/other:"), Some(1));
    }
}
