//! Which workers have local subscribers: a small bit set of worker indices.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerSet(Vec<u64>);

impl WorkerSet {
    pub fn insert(&mut self, w: usize) {
        let (i, b) = (w / 64, w % 64);
        if self.0.len() <= i {
            self.0.resize(i + 1, 0);
        }
        self.0[i] |= 1 << b;
    }

    pub fn remove(&mut self, w: usize) {
        if let Some(word) = self.0.get_mut(w / 64) {
            *word &= !(1 << (w % 64));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    pub fn union(&mut self, other: &WorkerSet) {
        for (i, &w) in other.0.iter().enumerate() {
            if self.0.len() <= i {
                self.0.push(0);
            }
            self.0[i] |= w;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &word)| {
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
