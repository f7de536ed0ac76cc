//! The two building blocks of the bounded stores.
//!
//! [`Ring`] holds items in arrival order and gives each a sequence number
//! that is never reused, so an index can refer to an item by number and the
//! number stays valid (or clearly dead) after older items are evicted.
//! [`SeqIndex`] maps a key (trace id, service) to the sequence numbers of its
//! items, oldest first. Because eviction always removes the globally oldest
//! item, that item is also the oldest of each of its keys: unindexing is a
//! `pop_front`, O(1), with no search.

use std::{
    borrow::Borrow,
    collections::{HashMap, VecDeque},
    hash::Hash,
};

use crate::hashing::FastHash;

/// A FIFO of items addressed by sequence number.
#[derive(Debug)]
pub struct Ring<T> {
    items: VecDeque<T>,
    /// Sequence number of `items[0]`; grows by one per eviction.
    first_seq: u64,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            first_seq: 0,
        }
    }
}

impl<T> Ring<T> {
    /// The sequence number the next pushed item will get.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.items.len() as u64
    }

    pub fn push(&mut self, item: T) -> u64 {
        let seq = self.next_seq();
        self.items.push_back(item);
        seq
    }

    pub fn pop_oldest(&mut self) -> Option<(u64, T)> {
        let item = self.items.pop_front()?;
        let seq = self.first_seq;
        self.first_seq += 1;
        Some((seq, item))
    }

    /// `None` once the item has been evicted.
    pub fn get(&self, seq: u64) -> Option<&T> {
        let offset = seq.checked_sub(self.first_seq)?;
        self.items.get(usize::try_from(offset).ok()?)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn newest_first(&self) -> impl Iterator<Item = &T> {
        self.items.iter().rev()
    }
}

/// Key → sequence numbers of that key's items, oldest first.
#[derive(Debug)]
pub struct SeqIndex<K> {
    map: HashMap<K, VecDeque<u64>, FastHash>,
}

impl<K> Default for SeqIndex<K> {
    fn default() -> Self {
        Self {
            map: HashMap::default(),
        }
    }
}

impl<K: Hash + Eq> SeqIndex<K> {
    pub fn insert(&mut self, key: K, seq: u64) {
        self.map.entry(key).or_default().push_back(seq);
    }

    /// [`Self::insert`] for a key that is costly to make: `make` is called
    /// only when the key is new.
    pub fn insert_with<Q>(&mut self, key: &Q, make: impl FnOnce() -> K, seq: u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.map.get_mut(key) {
            Some(seqs) => seqs.push_back(seq),
            None => self.insert(make(), seq),
        }
    }

    /// Forgets `seq`, which must be the oldest item of `key` (true when items
    /// are evicted oldest first). Drops the key when it has no items left,
    /// so the key set is exactly the set of keys with stored items.
    pub fn remove_oldest<Q>(&mut self, key: &Q, seq: u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(seqs) = self.map.get_mut(key) else {
            return;
        };
        if seqs.front() == Some(&seq) {
            seqs.pop_front();
        } else {
            // Cannot happen with FIFO eviction; degrade to a search rather
            // than leave a dangling entry.
            seqs.retain(|s| *s != seq);
        }
        if seqs.is_empty() {
            self.map.remove(key);
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&VecDeque<u64>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &VecDeque<u64>)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_numbers_survive_eviction() {
        let mut ring = Ring::default();
        assert_eq!(ring.push("a"), 0);
        assert_eq!(ring.push("b"), 1);
        assert_eq!(ring.pop_oldest(), Some((0, "a")));
        assert_eq!(ring.get(0), None);
        assert_eq!(ring.get(1), Some(&"b"));
        assert_eq!(ring.push("c"), 2);
        assert_eq!(ring.get(2), Some(&"c"));
        assert_eq!(ring.newest_first().collect::<Vec<_>>(), [&"c", &"b"]);
    }

    #[test]
    fn index_drops_empty_keys() {
        let mut index = SeqIndex::default();
        index.insert("cart", 0);
        index.insert("cart", 2);
        index.insert("auth", 1);
        index.remove_oldest("cart", 0);
        assert_eq!(index.get("cart").unwrap(), &VecDeque::from([2]));
        index.remove_oldest("auth", 1);
        assert!(index.get("auth").is_none());
        assert_eq!(index.len(), 1);
    }
}
