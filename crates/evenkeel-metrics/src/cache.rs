//! Handles resolved once per label set, and label values interned once.
//!
//! The recorder is asked for a handle only the first time a label set is
//! seen; after that the handle is found by a small `Copy` key (indices and
//! `&'static str`s):
//!
//! - a [`Table`] keeps its first [`SLOTS`] entries in write-once slots that
//!   are read with plain loads (no lock, no read-modify-write: nothing for
//!   the cores of a busy client to fight over), and the rest in a [`Map`];
//! - a [`Map`] is a hash map behind a read-write lock.
//!
//! Label values that come from outside (host names, routes, the names in
//! events) go through an [`Interner`] first: it turns the borrowed `&str`
//! into a `u32` without allocating (its first keys sit in write-once slots
//! too), and caps how many distinct values it will keep.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use metrics::SharedString;
use parking_lot::RwLock;

use crate::labels::OTHER;

/// A small multiplicative hasher (the one rustc uses): keys here are a few
/// integers or short strings, and every distinct key costs a registration,
/// so there is nothing for a flooding attacker to gain.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

type Fx = BuildHasherDefault<FxHasher>;

/// Values by a small key, built on first use.
pub(crate) struct Map<K, V> {
    inner: RwLock<HashMap<K, V, Fx>>,
}

impl<K, V> Default for Map<K, V> {
    fn default() -> Self {
        Map {
            inner: RwLock::new(HashMap::default()),
        }
    }
}

impl<K: Hash + Eq + Copy, V> Map<K, V> {
    /// Runs `f` on the value of `key`, building it with `make` the first
    /// time. `make` runs under the write lock, at most once per key.
    #[inline]
    pub(crate) fn with<R>(&self, key: K, make: impl FnOnce() -> V, f: impl FnOnce(&V) -> R) -> R {
        if let Some(value) = self.inner.read().get(&key) {
            return f(value);
        }
        self.slow(key, make, f)
    }

    #[cold]
    #[inline(never)]
    fn slow<R>(&self, key: K, make: impl FnOnce() -> V, f: impl FnOnce(&V) -> R) -> R {
        let mut map = self.inner.write();
        f(map.entry(key).or_insert_with(make))
    }

    /// Runs `f` on the value of `key`, mutably, building it first if needed.
    pub(crate) fn with_mut<R>(
        &self,
        key: K,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> R,
    ) -> R {
        let mut map = self.inner.write();
        f(map.entry(key).or_insert_with(make))
    }

    /// How many keys are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.read().len()
    }
}

/// How many entries a [`Table`] or an [`Interner`] keeps in write-once
/// slots; a client rarely has more label sets per layer than this.
pub(crate) const SLOTS: usize = 8;

/// Values by a small key: the first [`SLOTS`] in write-once slots, scanned
/// without a lock; the rest in a [`Map`].
pub(crate) struct Table<K, V> {
    slots: [OnceLock<(K, V)>; SLOTS],
    overflow: Map<K, Arc<V>>,
}

/// Where a [`Table`] keeps a value: what a future holds to find it again.
pub(crate) enum Ref<V> {
    /// In slot `n`.
    Slot(u8),
    /// In the overflow map.
    Overflow(Arc<V>),
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table {
            slots: std::array::from_fn(|_| OnceLock::new()),
            overflow: Map::default(),
        }
    }
}

impl<K: Hash + Eq + Copy, V> Table<K, V> {
    /// Where the value of `key` is, building it with `make` the first time
    /// (at most once per key, even when threads race: a slot is claimed by
    /// one of them and the others wait for it).
    #[inline]
    pub(crate) fn find(&self, key: K, make: impl Fn() -> V) -> Ref<V> {
        for (i, slot) in self.slots.iter().enumerate() {
            let (k, _) = match slot.get() {
                Some(entry) => entry,
                None => slot.get_or_init(|| (key, make())),
            };
            if *k == key {
                return Ref::Slot(i as u8);
            }
        }
        Ref::Overflow(self.overflow.with(key, || Arc::new(make()), Arc::clone))
    }

    /// The value a [`Ref`] from this table points at.
    #[inline]
    pub(crate) fn get<'a>(&'a self, at: &'a Ref<V>) -> Option<&'a V> {
        match at {
            Ref::Slot(i) => self.slots.get(usize::from(*i))?.get().map(|(_, v)| v),
            Ref::Overflow(v) => Some(v),
        }
    }

    /// Runs `f` on the value of `key`, building it with `make` the first
    /// time.
    #[inline]
    pub(crate) fn with<R>(&self, key: K, make: impl Fn() -> V, f: impl FnOnce(&V) -> R) -> R {
        for slot in &self.slots {
            let (k, v) = match slot.get() {
                Some(entry) => entry,
                None => slot.get_or_init(|| (key, make())),
            };
            if *k == key {
                return f(v);
            }
        }
        self.overflow.with(key, || Arc::new(make()), |v| f(v))
    }
}

/// The id of [`OTHER`] in every [`Interner`].
pub(crate) const OTHER_ID: u32 = 0;

/// What an [`Interner`] keeps for a key whose label function gave nothing.
const NO_VALUE: u32 = u32::MAX;

fn known(id: u32) -> Option<u32> {
    (id != NO_VALUE).then_some(id)
}

struct Interned {
    ids: HashMap<Box<str>, u32, Fx>,
    values: Vec<SharedString>,
}

/// Turns label values into ids, keeping at most `limit` distinct keys; the
/// rest share [`OTHER_ID`], whose value is `_OTHER`.
pub(crate) struct Interner {
    /// The first keys and their ids, filled under the write lock.
    slots: [OnceLock<(Box<str>, u32)>; SLOTS],
    inner: RwLock<Interned>,
    limit: usize,
    /// Set once `limit` keys are held.
    full: AtomicBool,
}

impl Interner {
    pub(crate) fn new(limit: usize) -> Self {
        Interner {
            slots: std::array::from_fn(|_| OnceLock::new()),
            inner: RwLock::new(Interned {
                ids: HashMap::default(),
                values: vec![SharedString::const_str(OTHER)],
            }),
            limit,
            full: AtomicBool::new(false),
        }
    }

    /// The id of `value`, interning it when there is room.
    #[inline]
    pub(crate) fn id(&self, value: &str) -> u32 {
        self.id_by(value, |v| {
            Some(SharedString::from_shared(Arc::<str>::from(v)))
        })
        .unwrap_or(OTHER_ID)
    }

    /// The id of the value `label` derives from `key`, interning it when
    /// there is room. Look-ups go by `key`, so a key that is cheap to have
    /// (a raw authority) stands for a value that costs parsing (its host);
    /// `label` runs only the first time a key is seen. A key whose `label`
    /// is `None` gets `None` (and is not remembered).
    #[inline]
    pub(crate) fn id_by(
        &self,
        key: &str,
        label: impl FnOnce(&str) -> Option<SharedString>,
    ) -> Option<u32> {
        for slot in &self.slots {
            match slot.get() {
                Some((k, id)) if **k == *key => return known(*id),
                Some(_) => {}
                None => break,
            }
        }
        if let Some(&id) = self.inner.read().ids.get(key) {
            return known(id);
        }
        if self.full.load(Ordering::Relaxed) {
            return Some(OTHER_ID);
        }
        self.insert(key, label)
    }

    #[cold]
    #[inline(never)]
    fn insert(&self, key: &str, label: impl FnOnce(&str) -> Option<SharedString>) -> Option<u32> {
        let mut inner = self.inner.write();
        if let Some(&id) = inner.ids.get(key) {
            return known(id);
        }
        if inner.ids.len() >= self.limit {
            // From now on a new key costs a read lock, not the write lock.
            self.full.store(true, Ordering::Relaxed);
            return Some(OTHER_ID);
        }
        // A key without a value is remembered too, so it is not parsed again.
        let id = match label(key) {
            Some(value) => {
                let id = u32::try_from(inner.values.len()).unwrap_or(OTHER_ID);
                inner.values.push(value);
                id
            }
            None => NO_VALUE,
        };
        inner.ids.insert(key.into(), id);
        if let Some(slot) = self.slots.iter().find(|slot| slot.get().is_none()) {
            // Under the write lock: no other thread is filling slots.
            let _ = slot.set((key.into(), id));
        }
        known(id)
    }

    /// The value of an id (`_OTHER` for an unknown one).
    pub(crate) fn value(&self, id: u32) -> SharedString {
        let inner = self.inner.read();
        let index = usize::try_from(id).unwrap_or(0);
        inner.values.get(index).unwrap_or(&inner.values[0]).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn interner_caps_distinct_values() {
        let interner = Interner::new(2);
        let a = interner.id("a.example");
        let b = interner.id("b.example");
        assert_ne!(a, b);
        assert_ne!(a, OTHER_ID);
        assert_eq!(interner.id("a.example"), a);
        assert_eq!(interner.id("c.example"), OTHER_ID);
        assert_eq!(&*interner.value(a), "a.example");
        assert_eq!(&*interner.value(OTHER_ID), "_OTHER");
        assert_eq!(&*interner.value(99), "_OTHER");
    }

    #[test]
    fn interner_derives_values_from_keys_once() {
        let interner = Interner::new(8);
        let parsed = std::cell::Cell::new(0);
        let host = |key: &str| {
            parsed.set(parsed.get() + 1);
            key.split(':')
                .next()
                .map(|h| SharedString::from_owned(h.to_owned()))
        };
        let a = interner.id_by("api.example.com:443", host).unwrap();
        let b = interner.id_by("api.example.com:8443", host).unwrap();
        assert_eq!(interner.id_by("api.example.com:443", host), Some(a));
        assert_ne!(a, b);
        assert_eq!(&*interner.value(a), "api.example.com");
        assert_eq!(&*interner.value(b), "api.example.com");
        // A key without a value is remembered: not parsed again.
        assert_eq!(
            interner.id_by(":80", |k| host(k).filter(|h| !h.is_empty())),
            None
        );
        assert_eq!(interner.id_by(":80", host), None);
        assert_eq!(parsed.get(), 3);
    }

    #[test]
    fn map_builds_each_value_once() {
        let map: Map<(u8, u16), u32> = Map::default();
        let mut built = 0;
        for _ in 0..3 {
            map.with(
                (1, 200),
                || {
                    built += 1;
                    7
                },
                |v| assert_eq!(*v, 7),
            );
        }
        assert_eq!(built, 1);
        map.with_mut((1, 200), || 0, |v| *v += 1);
        assert_eq!(map.with((1, 200), || 0, |v| *v), 8);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn table_keeps_the_first_keys_in_slots_and_the_rest_in_the_map() {
        let table: Table<u32, String> = Table::default();
        let count = std::cell::Cell::new(0);
        let built = &count;
        let make = |n: u32| {
            move || {
                built.set(built.get() + 1);
                n.to_string()
            }
        };
        let refs: Vec<Ref<String>> = (0..SLOTS as u32 + 3)
            .map(|n| table.find(n, make(n)))
            .collect();
        for (n, r) in refs.iter().enumerate() {
            assert_eq!(
                table.get(r).map(String::as_str),
                Some(n.to_string().as_str())
            );
            assert_eq!(matches!(r, Ref::Slot(_)), n < SLOTS);
        }
        // Found again, not built again.
        for n in 0..SLOTS as u32 + 3 {
            table.with(n, make(n), |v| assert_eq!(*v, n.to_string()));
        }
        assert_eq!(count.get(), SLOTS + 3);
        assert_eq!(table.overflow.len(), 3);
        assert!(table.get(&Ref::Slot(200)).is_none());
    }

    #[test]
    fn racing_threads_build_each_key_once() {
        let table: Table<u32, u32> = Table::default();
        let built = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for n in 0..(SLOTS as u32 * 2) {
                        table.with(
                            n,
                            || {
                                built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                n * 10
                            },
                            |v| assert_eq!(*v, n * 10),
                        );
                    }
                });
            }
        });
        assert_eq!(built.into_inner(), SLOTS * 2);
    }

    #[test]
    fn hasher_tells_short_strings_apart() {
        let fx = Fx::default();
        let hashes: Vec<u64> = ["", "a", "b", "ab", "api.example.com", "api.example.org"]
            .iter()
            .map(|s| fx.hash_one(s))
            .collect();
        for (i, h) in hashes.iter().enumerate() {
            assert!(!hashes[..i].contains(h));
        }
    }
}
