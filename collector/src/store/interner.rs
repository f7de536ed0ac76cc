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

use std::{collections::HashMap, sync::Arc};

use crate::hashing::FastHash;

/// What one distinct string costs besides its text: the `Arc` header, the
/// map entry (key, symbol, control byte, padding) and the slot.
const SYMBOL_OVERHEAD: usize =
    2 * size_of::<usize>() + size_of::<Arc<str>>() + 2 * size_of::<u32>() + size_of::<Slot>();

#[derive(Debug, Default)]
pub struct Interner {
    symbols: HashMap<Arc<str>, u32, FastHash>,
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

impl Interner {
    /// The symbol for `text`, taking one reference on it.
    pub fn intern(&mut self, text: &str) -> u32 {
        if let Some(&sym) = self.symbols.get(text) {
            self.slots[sym as usize].refs += 1;
            return sym;
        }
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
        self.symbols.insert(shared, sym);
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
            self.symbols.remove(&*text);
            self.free.push(sym);
        }
    }

    /// The symbol of `text` if some stored span uses it; takes no reference.
    pub fn lookup(&self, text: &str) -> Option<u32> {
        self.symbols.get(text).copied()
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
        interner.release(post);
        assert_eq!(interner.bytes(), 0);
    }
}
