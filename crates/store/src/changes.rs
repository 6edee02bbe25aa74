//! The vector change log: every write that adds, replaces or removes a
//! vector also writes `seq → id` into the `vector_changes` tree, in the same
//! transaction. A saved semantic index records the sequence number it
//! reflects; at start-up only the ids changed after it are looked at again.
//!
//! Sequence numbers come from sled's `generate_id` (unique and increasing,
//! across restarts too), taken before the transaction. Transactions may
//! commit out of order, so [`Sequencer::stable`] reports the highest number
//! below which nothing is still being written: a change numbered at or
//! below it is in the tree, and any change written later gets a higher one.

use crate::error::StoreError;
use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

/// Meta key: the change log holds nothing at or below this number.
pub(crate) const FORGOTTEN_KEY: &str = "vector_changes_forgotten";
/// Meta key: a random identity given to the store when it is created.
pub(crate) const INSTANCE_KEY: &str = "instance";

#[derive(Default)]
struct Open {
    writing: BTreeSet<u64>,
    last: u64,
}

/// Hands out sequence numbers and knows which are still being written.
#[derive(Default)]
pub(crate) struct Sequencer {
    open: Mutex<Open>,
}

/// One write in progress; its number counts as written once this is dropped.
pub(crate) struct Ticket<'a> {
    pub seq: u64,
    of: &'a Sequencer,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.of.lock().writing.remove(&self.seq);
    }
}

impl Sequencer {
    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts numbering after whatever an earlier process handed out.
    pub(crate) fn starting_at(last: u64) -> Self {
        Self { open: Mutex::new(Open { writing: BTreeSet::new(), last }) }
    }

    /// A number for one write. It is taken under the lock, so no number is
    /// handed out without being known to be in progress.
    pub(crate) fn begin(&self, db: &sled::Db) -> Result<Ticket<'_>, StoreError> {
        let mut open = self.lock();
        let seq = db.generate_id()?;
        open.writing.insert(seq);
        open.last = open.last.max(seq);
        Ok(Ticket { seq, of: self })
    }

    /// Every change numbered at or below this has been written (or failed).
    pub(crate) fn stable(&self) -> u64 {
        let open = self.lock();
        open.writing.first().map_or(open.last, |first| first.saturating_sub(1))
    }
}

/// A random 128-bit identity, from the OS-seeded hasher keys std uses.
pub(crate) fn random_identity() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        h.finish()
    };
    let mut out = [0u8; 16];
    let (a, b) = out.split_at_mut(8);
    a.copy_from_slice(&word().to_le_bytes());
    b.copy_from_slice(&word().to_le_bytes());
    out
}
