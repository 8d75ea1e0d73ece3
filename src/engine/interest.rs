//! Which workers have local subscribers: a small bit set of worker indices.

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
            .flat_map(|(i, word)| {
                (0..64)
                    .filter(move |b| word & (1 << b) != 0)
                    .map(move |b| i * 64 + b)
            })
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
}
