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
    2 * size_of::<usize>() + size_of::<Key>() + 2 * size_of::<u32>() + size_of::<Slot>();

/// Strings up to this long are copied into their map entry.
const INLINE_KEY: usize = 22;

#[derive(Debug, Default)]
pub struct Interner {
    symbols: HashMap<Key, u32, FastHash>,
    /// Indexed by symbol; `text` is `None` for a freed symbol.
    slots: Vec<Slot>,
    /// Freed symbols, reused before new ones are minted.
    free: Vec<u32>,
    /// Estimated heap bytes of all live strings (see [`SYMBOL_OVERHEAD`]).
    bytes: usize,
    /// Strings freed so far: while it is unchanged, every symbol handed
    /// out still means the same string (see [`RecentSymbols`]).
    frees: u64,
}

#[derive(Debug, Default)]
struct Slot {
    text: Option<Arc<str>>,
    refs: u64,
}

/// A map key that is looked up by its bytes, so strings read straight
/// from protobuf (checked as UTF-8 once, by the receiver) are interned
/// without checking them again.
///
/// Short strings (most keys, methods, routes, ids) are copied into the
/// entry: a lookup then compares them inside the table instead of
/// following a pointer to a string elsewhere on the heap, which was most
/// of the cost of interning a span's strings.
#[derive(Debug)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Shared(Arc<str>),
}

impl Key {
    fn new(text: &Arc<str>) -> Self {
        let len = text.len();
        if len <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            bytes[..len].copy_from_slice(text.as_bytes());
            Self::Inline {
                len: len as u8,
                bytes,
            }
        } else {
            Self::Shared(Arc::clone(text))
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Shared(text) => text.as_bytes(),
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
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
        self.symbols.insert(Key::new(&shared), sym);
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
            self.frees += 1;
        }
    }

    /// Takes one more reference on a live symbol.
    pub fn retain(&mut self, sym: u32) {
        self.slots[sym as usize].refs += 1;
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

/// The symbols of the strings recently seen at each position of a span's
/// attribute list (and of span names), to intern the next span's without
/// a hash lookup.
///
/// Spans from one SDK carry the same keys in the same order, and a few
/// values at each position (methods, routes, peers) over and over, so the
/// strings last seen at the same position usually include the one at
/// hand; only on a miss is the interner's map consulted. The strings are
/// borrowed from the export being stored, so a `RecentSymbols` lives for
/// one export. A symbol freed and reused for another string would make
/// the memo lie, so it is forgotten whenever the interner frees a string.
#[derive(Debug, Default)]
pub struct RecentSymbols<'a> {
    /// The interner's free count when the memo was last valid.
    frees: u64,
    keys: Vec<Recent<'a>>,
    values: Vec<Recent<'a>>,
    names: Recent<'a>,
}

/// The last [`WAYS`] distinct strings seen at one position.
#[derive(Debug, Default, Clone, Copy)]
struct Recent<'a> {
    seen: [(&'a [u8], u32); WAYS],
    /// Slots filled, and the next to replace once all are.
    len: usize,
    next: usize,
}

const WAYS: usize = 4;

impl<'a> Recent<'a> {
    fn find(&self, text: &[u8]) -> Option<u32> {
        self.seen[..self.len]
            .iter()
            .find(|(seen, _)| same_bytes(seen, text))
            .map(|&(_, sym)| sym)
    }

    fn remember(&mut self, text: &'a [u8], sym: u32) {
        if self.len < WAYS {
            self.seen[self.len] = (text, sym);
            self.len += 1;
        } else {
            self.seen[self.next] = (text, sym);
            self.next = (self.next + 1) % WAYS;
        }
    }
}

impl<'a> RecentSymbols<'a> {
    /// Forgets everything if `interner` freed a string since the last call.
    pub fn validate(&mut self, interner: &Interner) {
        if interner.frees != self.frees {
            self.frees = interner.frees;
            self.keys.clear();
            self.values.clear();
            self.names = Recent::default();
        }
    }

    /// [`Interner::intern_bytes`] for the key of attribute `position`.
    pub fn key(&mut self, position: usize, text: &'a [u8], interner: &mut Interner) -> Option<u32> {
        Self::symbol(Self::at(&mut self.keys, position), text, interner)
    }

    /// [`Interner::intern_bytes`] for the string value of attribute
    /// `position`.
    pub fn value(
        &mut self,
        position: usize,
        text: &'a [u8],
        interner: &mut Interner,
    ) -> Option<u32> {
        Self::symbol(Self::at(&mut self.values, position), text, interner)
    }

    /// [`Interner::intern_bytes`] for a span name.
    pub fn name(&mut self, text: &'a [u8], interner: &mut Interner) -> Option<u32> {
        Self::symbol(&mut self.names, text, interner)
    }

    fn at<'m>(memo: &'m mut Vec<Recent<'a>>, position: usize) -> &'m mut Recent<'a> {
        if position >= memo.len() {
            memo.resize(position + 1, Recent::default());
        }
        &mut memo[position]
    }

    fn symbol(recent: &mut Recent<'a>, text: &'a [u8], interner: &mut Interner) -> Option<u32> {
        if let Some(sym) = recent.find(text) {
            interner.retain(sym);
            return Some(sym);
        }
        let sym = interner.intern_bytes(text)?;
        recent.remember(text, sym);
        Some(sym)
    }
}

/// `a == b` for the short strings of attributes, a word at a time and
/// inline (the slice comparison calls `memcmp`, whose call costs more than
/// comparing a key or a route).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8 bytes"));
    for (x, y) in (&mut wa).zip(&mut wb) {
        if word(x) != word(y) {
            return false;
        }
    }
    wa.remainder()
        .iter()
        .zip(wb.remainder())
        .all(|(x, y)| x == y)
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

    #[test]
    fn same_bytes_is_slice_equality() {
        let texts: [&[u8]; 7] = [
            b"",
            b"a",
            b"b",
            b"http.route",
            b"http.routf",
            b"12345678",
            b"123456789",
        ];
        for a in texts {
            for b in texts {
                assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn recent_symbols_take_references_and_forget_freed_strings() {
        let mut interner = Interner::default();
        let mut recent = RecentSymbols::default();
        recent.validate(&interner);
        let get = recent.value(0, b"GET", &mut interner).unwrap();
        assert_eq!(recent.value(0, b"GET", &mut interner), Some(get));
        assert!(recent.key(0, b"http.method", &mut interner).is_some());
        // Two references on GET: releasing one keeps it.
        interner.release(get);
        recent.validate(&interner);
        assert_eq!(recent.value(0, b"GET", &mut interner), Some(get));
        interner.release(get);
        interner.release(get);
        // GET is freed and its symbol reused for PUT: the memo must not
        // answer GET with it.
        recent.validate(&interner);
        let put = interner.intern("PUT");
        assert_eq!(put, get);
        let get_again = recent.value(0, b"GET", &mut interner).unwrap();
        assert_ne!(get_again, put);
        assert_eq!(interner.resolve(get_again), "GET");
        assert_eq!(interner.resolve(put), "PUT");
    }
}
