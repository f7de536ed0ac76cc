//! Reference-counted tables of the values many spans share: resources and
//! instrumentation scopes.
//!
//! Every export repeats its resource (service name, version, instance id,
//! ...) once per `ResourceSpans`; a table keeps one copy per distinct
//! content and gives spans a `u32` id for it. Like the interner, an entry
//! lives as long as some stored span refers to it, so the table's size
//! follows the store's contents and its bytes count against the store's
//! budget.

use std::collections::HashMap;

/// What an entry costs besides its value and key: the map entry and slot.
const ENTRY_OVERHEAD: usize = 64;

#[derive(Debug)]
pub struct SharedTable<T> {
    /// Content key (an encoding of the value) → id.
    ids: HashMap<Box<[u8]>, u32>,
    /// Indexed by id; `None` once freed.
    slots: Vec<Option<Entry<T>>>,
    free: Vec<u32>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry<T> {
    value: T,
    key: Box<[u8]>,
    refs: u64,
    bytes: usize,
}

impl<T> Default for SharedTable<T> {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            bytes: 0,
        }
    }
}

impl<T> SharedTable<T> {
    /// The id of the entry with `key`, taking one reference; `make` builds
    /// the value and says its heap bytes when the entry is new.
    pub fn acquire(&mut self, key: &[u8], make: impl FnOnce() -> (T, usize)) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            self.retain(id);
            return id;
        }
        let (value, value_bytes) = make();
        let bytes = ENTRY_OVERHEAD + 2 * key.len() + value_bytes;
        let entry = Entry {
            value,
            key: key.into(),
            refs: 1,
            bytes,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(entry);
                id
            }
            None => {
                let id = u32::try_from(self.slots.len()).expect("fewer than 2^32 entries");
                self.slots.push(Some(entry));
                id
            }
        };
        self.bytes += bytes;
        self.ids.insert(key.into(), id);
        id
    }

    pub fn retain(&mut self, id: u32) {
        if let Some(entry) = self.slots[id as usize].as_mut() {
            entry.refs += 1;
        }
    }

    /// Gives back one reference; the entry is freed with the last one.
    pub fn release(&mut self, id: u32) {
        let slot = &mut self.slots[id as usize];
        let Some(entry) = slot.as_mut() else {
            return;
        };
        entry.refs -= 1;
        if entry.refs == 0
            && let Some(entry) = slot.take()
        {
            self.bytes -= entry.bytes;
            self.ids.remove(&entry.key);
            self.free.push(id);
        }
    }

    /// The value of a live entry.
    pub fn get(&self, id: u32) -> &T {
        &self.slots[id as usize]
            .as_ref()
            .expect("stored spans only refer to live entries")
            .value
    }

    /// Live entries with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, slot)| Some((id as u32, &slot.as_ref()?.value)))
    }

    /// One past the highest id handed out, for tables indexed by id.
    pub fn id_bound(&self) -> usize {
        self.slots.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}
