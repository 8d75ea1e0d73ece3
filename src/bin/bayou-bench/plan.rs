//! Who publishes what to whom, and the per-client books kept to find lost and duplicated
//! messages. Pure: the same plan is computed by the publisher and by every subscriber process.

/// Where message number `seq` goes and which client expects it.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// All subscribers share one channel (`fanout`) instead of one channel each.
    pub shared_channel: bool,
    /// Clients in the whole run (over every process).
    pub clients: usize,
    /// Messages published in the whole run.
    pub messages: u64,
}

/// The one channel of a fan-out run.
pub const FANOUT_CHANNEL: &str = "/fanout";

impl Plan {
    /// The channel client `i` subscribes to.
    pub fn channel_of_client(&self, i: usize) -> String {
        if self.shared_channel {
            FANOUT_CHANNEL.to_owned()
        } else {
            format!("/u/{i}")
        }
    }

    /// The channel message `seq` is published to: spread round-robin over the clients.
    pub fn channel_of_message(&self, seq: u64) -> String {
        self.channel_of_client((seq % self.clients.max(1) as u64) as usize)
    }

    /// How many messages client `i` should receive.
    pub fn expected_by(&self, i: usize) -> u64 {
        if self.shared_channel {
            return self.messages;
        }
        let n = self.clients.max(1) as u64;
        self.messages / n + u64::from((i as u64) < self.messages % n)
    }

    /// The slot of message `seq` in client `i`'s book, or `None` when it is not for `i`.
    pub fn slot(&self, i: usize, seq: u64) -> Option<usize> {
        if seq >= self.messages {
            return None;
        }
        if self.shared_channel {
            return Some(seq as usize);
        }
        let n = self.clients.max(1) as u64;
        (seq % n == i as u64).then_some((seq / n) as usize)
    }
}

/// One client's book: which of its expected messages arrived, and how often.
#[derive(Debug, Default)]
pub struct Book {
    seen: Vec<u64>,
    pub expected: u64,
    pub unique: u64,
    pub duplicated: u64,
    /// Deliveries that were not for this client (wrong channel or unknown sequence).
    pub unexpected: u64,
}

impl Book {
    pub fn new(expected: u64) -> Book {
        Book {
            seen: vec![0; expected.div_ceil(64) as usize],
            expected,
            ..Book::default()
        }
    }

    pub fn record(&mut self, slot: Option<usize>) {
        let Some(slot) = slot.filter(|&s| (s as u64) < self.expected) else {
            self.unexpected += 1;
            return;
        };
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        if self.seen[word] & bit != 0 {
            self.duplicated += 1;
        } else {
            self.seen[word] |= bit;
            self.unique += 1;
        }
    }

    #[cfg(test)]
    pub fn lost(&self) -> u64 {
        self.expected - self.unique
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_plan_spreads_messages_round_robin() {
        let p = Plan {
            shared_channel: false,
            clients: 3,
            messages: 8,
        };
        assert_eq!(p.channel_of_message(4), "/u/1");
        assert_eq!(
            (0..3).map(|i| p.expected_by(i)).collect::<Vec<_>>(),
            vec![3, 3, 2]
        );
        assert_eq!(p.slot(1, 4), Some(1));
        assert_eq!(p.slot(2, 4), None);
        assert_eq!(p.slot(1, 10), None);
        let total: u64 = (0..3).map(|i| p.expected_by(i)).sum();
        assert_eq!(total, 8);
    }

    #[test]
    fn fanout_plan_sends_everything_to_everyone() {
        let p = Plan {
            shared_channel: true,
            clients: 5,
            messages: 7,
        };
        assert_eq!(p.expected_by(3), 7);
        assert_eq!(p.slot(3, 6), Some(6));
        assert_eq!(p.channel_of_message(2), FANOUT_CHANNEL);
    }

    #[test]
    fn books_count_lost_duplicated_and_unexpected() {
        let mut b = Book::new(130);
        b.record(Some(0));
        b.record(Some(129));
        b.record(Some(129));
        b.record(Some(130));
        b.record(None);
        assert_eq!((b.unique, b.duplicated, b.unexpected), (2, 1, 2));
        assert_eq!(b.lost(), 128);
    }
}
