//! Which workers have local subscribers: a small bit set of worker indices, and the table of
//! patterns that a publish's channel name is looked up in without building any text.

use super::ChannelMap;
use crate::bayeux::channel::{self, Pattern, Wildcard};

/// Workers 0 to 63 live in `low`, inline; larger indices spill into `high`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerSet {
    low: u64,
    high: Vec<u64>,
}

impl WorkerSet {
    fn word(&mut self, i: usize) -> &mut u64 {
        if i == 0 {
            return &mut self.low;
        }
        if self.high.len() < i {
            self.high.resize(i, 0);
        }
        &mut self.high[i - 1]
    }

    pub fn insert(&mut self, w: usize) {
        *self.word(w / 64) |= 1 << (w % 64);
    }

    pub fn remove(&mut self, w: usize) {
        let (i, b) = (w / 64, w % 64);
        if i == 0 {
            self.low &= !(1 << b);
        } else if let Some(word) = self.high.get_mut(i - 1) {
            *word &= !(1 << b);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.low == 0 && self.high.iter().all(|&w| w == 0)
    }

    pub fn union(&mut self, other: &WorkerSet) {
        self.low |= other.low;
        for (i, &w) in other.high.iter().enumerate() {
            *self.word(i + 1) |= w;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.low)
            .chain(self.high.iter().copied())
            .enumerate()
            .flat_map(|(i, word)| Bits(word).map(move |b| i * 64 + b))
    }
}

/// The set bits of a word, lowest first, one step per set bit.
struct Bits(u64);

impl Iterator for Bits {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let b = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(b)
    }
}

/// Patterns -> workers with local subscribers, kept under the pattern's parent (`/a/*` and
/// `/a/**` both under `/a`), so that the patterns of a publish are looked up with slices of
/// its name ([`channel::patterns`]).
#[derive(Debug, Default)]
pub struct PatternTable {
    /// `parent/*`.
    one: ChannelMap<Box<str>, WorkerSet>,
    /// `parent/**`.
    many: ChannelMap<Box<str>, WorkerSet>,
}

impl PatternTable {
    fn table(&mut self, wildcard: Wildcard) -> &mut ChannelMap<Box<str>, WorkerSet> {
        match wildcard {
            Wildcard::One => &mut self.one,
            Wildcard::Many => &mut self.many,
        }
    }

    /// Records that `worker`'s interest in `pattern` turned on or off. Returns true when the
    /// pattern gained its first interested worker or lost its last.
    pub fn update(&mut self, pattern: Pattern<'_>, worker: usize, on: bool) -> bool {
        let table = self.table(pattern.wildcard);
        if on {
            let set = table.entry(pattern.parent.into()).or_default();
            let was_empty = set.is_empty();
            set.insert(worker);
            return was_empty;
        }
        let Some(set) = table.get_mut(pattern.parent) else {
            return false;
        };
        set.remove(worker);
        let now_empty = set.is_empty();
        if now_empty {
            table.remove(pattern.parent);
        }
        now_empty
    }

    /// Adds to `set` the workers interested in a pattern that matches the name `name`.
    pub fn add_matches(&self, name: &str, set: &mut WorkerSet) {
        for p in channel::patterns(name) {
            let table = match p.wildcard {
                Wildcard::One => &self.one,
                Wildcard::Many => &self.many,
            };
            if let Some(workers) = table.get(p.parent) {
                set.union(workers);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.one.len() + self.many.len()
    }

    pub fn is_empty(&self) -> bool {
        self.one.is_empty() && self.many.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_ops() {
        let mut s = WorkerSet::default();
        assert!(s.is_empty());
        s.insert(3);
        s.insert(70);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![3, 70]);
        s.remove(70);
        let mut t = WorkerSet::default();
        t.insert(1);
        s.union(&t);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![1, 3]);
        s.remove(1);
        s.remove(3);
        assert!(s.is_empty());
    }

    #[test]
    fn pattern_table() {
        let pattern = |s| Pattern::parse(s).expect("a pattern");
        let mut t = PatternTable::default();
        assert!(t.update(pattern("/a/*"), 1, true));
        assert!(!t.update(pattern("/a/*"), 2, true));
        assert!(t.update(pattern("/**"), 3, true));
        assert!(t.update(pattern("/a/b/**"), 4, true));
        assert_eq!(t.len(), 3);
        let matches = |name| {
            let mut set = WorkerSet::default();
            t.add_matches(name, &mut set);
            set.iter().collect::<Vec<_>>()
        };
        assert_eq!(matches("/a/b"), [1, 2, 3]);
        assert_eq!(matches("/a/b/c"), [3, 4]);
        assert_eq!(matches("/a"), [3]);
        assert!(!t.update(pattern("/a/*"), 1, false));
        assert!(t.update(pattern("/a/*"), 2, false));
        assert!(!t.update(pattern("/a/*"), 2, false));
        assert!(t.update(pattern("/**"), 3, false));
        assert!(t.update(pattern("/a/b/**"), 4, false));
        assert!(t.is_empty());
    }
}
