//! Reference-counted string interning for the span store.
//!
//! The mesh repeats the same few hundred strings (attribute keys, span
//! names, routes, methods, status messages) in every span. [`Interner`]
//! keeps each distinct string once and hands out a `u32` symbol; a stored
//! span holds symbols instead of `String`s, so storing a span costs no
//! allocation per string, and comparing two strings is comparing two
//! integers.
//!
//! Symbols are counted: every stored use takes a reference
//! ([`Interner::intern`]) and eviction gives it back
//! ([`Interner::release`]). A string no stored span uses any more is freed
//! at once and its symbol reused, so the interner's memory follows the
//! store's contents (and is charged to its byte budget) instead of growing
//! with every distinct value ever seen. It also means a string that is not
//! interned is not in any stored span: tag search relies on that to answer
//! "no match" without scanning.

use std::{
    borrow::Borrow,
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::Arc,
};

use crate::hashing::FastHash;

/// What one distinct string costs besides its text: the `Arc` header, the
/// map entry (key, symbol, control byte, padding) and the slot.
const SYMBOL_OVERHEAD: usize =
    2 * size_of::<usize>() + size_of::<Arc<str>>() + 2 * size_of::<u32>() + size_of::<Slot>();

#[derive(Debug, Default)]
pub struct Interner {
    symbols: HashMap<Key, u32, FastHash>,
    /// Indexed by symbol; `text` is `None` for a freed symbol.
    slots: Vec<Slot>,
    /// Freed symbols, reused before new ones are minted.
    free: Vec<u32>,
    /// Estimated heap bytes of all live strings (see [`SYMBOL_OVERHEAD`]).
    bytes: usize,
}

#[derive(Debug, Default)]
struct Slot {
    text: Option<Arc<str>>,
    refs: u64,
}

/// A map key that is looked up by its bytes, so strings read straight
/// from protobuf (checked as UTF-8 once, by the receiver) are interned
/// without checking them again.
#[derive(Debug, PartialEq, Eq)]
struct Key(Arc<str>);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Interner {
    /// The symbol for `text`, taking one reference on it.
    pub fn intern(&mut self, text: &str) -> u32 {
        match self.take(text.as_bytes()) {
            Some(sym) => sym,
            None => self.insert(text),
        }
    }

    /// Like [`Self::intern`] for the bytes of a string; `None` (and no
    /// reference taken) when they are not UTF-8.
    pub fn intern_bytes(&mut self, bytes: &[u8]) -> Option<u32> {
        if let Some(sym) = self.take(bytes) {
            return Some(sym);
        }
        let text = std::str::from_utf8(bytes).ok()?;
        Some(self.insert(text))
    }

    /// Takes a reference on the symbol of `bytes` if it is interned.
    fn take(&mut self, bytes: &[u8]) -> Option<u32> {
        let sym = *self.symbols.get(bytes)?;
        self.slots[sym as usize].refs += 1;
        Some(sym)
    }

    /// Interns a string that is not interned yet.
    fn insert(&mut self, text: &str) -> u32 {
        let shared: Arc<str> = text.into();
        let slot = Slot {
            text: Some(Arc::clone(&shared)),
            refs: 1,
        };
        let sym = match self.free.pop() {
            Some(sym) => {
                self.slots[sym as usize] = slot;
                sym
            }
            None => {
                // More than 4 billion distinct live strings cannot fit in
                // memory long before this overflows.
                let sym = u32::try_from(self.slots.len()).expect("fewer than 2^32 symbols");
                self.slots.push(slot);
                sym
            }
        };
        self.bytes += SYMBOL_OVERHEAD + text.len();
        self.symbols.insert(Key(shared), sym);
        sym
    }

    /// Gives back one reference; the string is freed with the last one.
    pub fn release(&mut self, sym: u32) {
        let slot = &mut self.slots[sym as usize];
        slot.refs -= 1;
        if slot.refs == 0
            && let Some(text) = slot.text.take()
        {
            self.bytes -= SYMBOL_OVERHEAD + text.len();
            self.symbols.remove(text.as_bytes());
            self.free.push(sym);
        }
    }

    /// The symbol of `text` if some stored span uses it; takes no reference.
    pub fn lookup(&self, text: &str) -> Option<u32> {
        self.symbols.get(text.as_bytes()).copied()
    }

    /// The text of a live symbol.
    pub fn resolve(&self, sym: u32) -> &str {
        self.slots[sym as usize].text.as_deref().unwrap_or_default()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.symbols.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_shared_counted_and_reused() {
        let mut interner = Interner::default();
        let get = interner.intern("GET");
        assert_eq!(interner.intern("GET"), get);
        let post = interner.intern("POST");
        assert_ne!(get, post);
        assert_eq!(interner.resolve(post), "POST");
        interner.release(get);
        assert_eq!(interner.lookup("GET"), Some(get));
        interner.release(get);
        assert_eq!(interner.lookup("GET"), None);
        assert_eq!(interner.len(), 1);
        // The freed symbol is reused for the next new string.
        assert_eq!(interner.intern("PUT"), get);
        interner.release(get);
        assert_eq!(interner.intern_bytes(b"POST"), Some(post));
        assert_eq!(interner.intern_bytes(b"\xff"), None);
        assert_eq!(interner.len(), 1);
        interner.release(post);
        interner.release(post);
        assert_eq!(interner.bytes(), 0);
    }
}
