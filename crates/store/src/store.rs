//! The sled database and its trees.

use crate::changes::{random_identity, Sequencer, Ticket, FORGOTTEN_KEY, INSTANCE_KEY};
use crate::counters::{
    add_u64, Counter, Verifications, SPENT_BY_MODEL_PREFIX, VERIFICATIONS_PREFIX, VERIFICATION_NANO_USD_PREFIX,
};
use crate::entry::{Entry, HitStats, ListFilter};
use crate::error::StoreError;
use crate::index_keys::{id_of_index_key, index_key, ms_of_index_key};
use crate::pending::{FlushTrees, Pending};
use deja_api::CacheKey;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Bumped when the on-disk layout changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

/// How often hit counts, access times and counter increments held in memory
/// are written to sled: what a crash can lose.
pub const HIT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

pub struct Store {
    db: sled::Db,
    entries: sled::Tree,
    by_created: sled::Tree,
    by_expiry: sled::Tree,
    by_access: sled::Tree,
    hit_stats: sled::Tree,
    vectors: sled::Tree,
    /// A learned paraphrase's exact key → the id of the entry it is served.
    aliases: sled::Tree,
    /// An entry's id → its aliases' keys, concatenated: removed with the entry.
    alias_of: sled::Tree,
    counters: sled::Tree,
    /// `seq → id` for every vector written or removed (see `changes.rs`).
    vector_changes: sled::Tree,
    sequencer: Sequencer,
    instance: [u8; 16],
    path: Option<std::path::PathBuf>,
    len: AtomicU64,
    /// Bytes of every entry and vector as stored (see [`Store::bytes`]).
    bytes: AtomicU64,
    corrupt: AtomicU64,
    pending: Arc<Pending>,
    flusher: Option<Flusher>,
}

/// The thread that writes pending hits every [`HIT_FLUSH_INTERVAL`]; it
/// flushes once more and ends when the store is dropped.
struct Flusher {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Flusher {
    fn spawn(pending: Arc<Pending>, trees: FlushTrees) -> Result<Self, StoreError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("deja-store-flush".into())
            .spawn(move || loop {
                let last = !matches!(stopped.recv_timeout(HIT_FLUSH_INTERVAL), Err(mpsc::RecvTimeoutError::Timeout));
                if let Err(e) = pending.flush(&trees) {
                    tracing::warn!(error = %e, "writing hit counts to the store failed");
                }
                if last {
                    return;
                }
            })
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        Ok(Self { stop, thread })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(f) = self.flusher.take() {
            drop(f.stop);
            let _ = f.thread.join();
        }
        // Nothing writes any more: the counts are exact, and the next open
        // may trust them instead of scanning every entry and vector.
        let mut sizes = [0u8; 16];
        sizes[..8].copy_from_slice(&self.len().to_le_bytes());
        sizes[8..].copy_from_slice(&self.bytes().to_le_bytes());
        if let Ok(meta) = self.db.open_tree("meta") {
            let _ = meta.insert(CLEAN_SIZES_KEY, &sizes[..]);
        }
        let _ = self.db.flush();
    }
}

/// `meta` key of the entry count and byte count written at a clean close.
pub const CLEAN_SIZES_KEY: &str = "clean_close_sizes";

/// The counts a clean close left, taken out of the store (and that removal
/// made durable) before anything is written: after a crash there are none,
/// and the caller counts by scanning.
fn take_clean_sizes(db: &sled::Db, meta: &sled::Tree) -> Result<Option<(u64, u64)>, sled::Error> {
    let Some(v) = meta.remove(CLEAN_SIZES_KEY)? else { return Ok(None) };
    db.flush()?;
    let count = v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let bytes = v.get(8..16).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    Ok(count.zip(bytes))
}

/// How long [`Store::open`] waits for the directory's lock. sled releases it
/// when the last of its background threads lets go of a closed store, which
/// can be a moment after the store is dropped; a lock still held after this
/// belongs to another live process and is reported.
const LOCK_WAIT: Duration = Duration::from_secs(3);

fn open_waiting_for_lock(path: &Path) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let opened = sled::Config::new().path(path).cache_capacity(256 * 1024 * 1024).flush_every_ms(Some(200)).open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// A vector as persisted, with the fingerprint it may be matched under.
pub struct StoredVector {
    pub id: CacheKey,
    pub fingerprint: [u8; 32],
    pub vector: Vec<f32>,
}

/// One batch of [`Store::sweep_expired`].
#[derive(Debug, Default)]
pub struct SweptBatch {
    /// Expiry keys visited (and deleted); fewer than asked means none are left.
    pub visited: usize,
    /// Entries removed, undecodable ones included.
    pub removed: Vec<CacheKey>,
    /// Ids whose entry was already gone: nothing to remove but their vectors in an index.
    pub dangling: Vec<CacheKey>,
}

pub struct ListPage {
    pub entries: Vec<(Entry, HitStats)>,
    /// Pass back to continue after the last entry.
    pub next_cursor: Option<String>,
}

impl Store {
    /// Opens (or creates) the store at `path`. sled replays its log, so a store
    /// left by a killed process opens to its last durable state.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = open_waiting_for_lock(path)?;
        Self::from_db(db, Some(path.to_path_buf()))
    }

    /// A store that lives in memory only, for tests and benchmarks.
    pub fn temporary() -> Result<Self, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?, None)
    }

    fn from_db(db: sled::Db, path: Option<std::path::PathBuf>) -> Result<Self, StoreError> {
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            Some(v) => {
                let found = v.as_ref().try_into().map_or(0, u32::from_le_bytes);
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema { found, expected: SCHEMA_VERSION });
                }
            }
            None => {
                meta.insert("schema_version", &SCHEMA_VERSION.to_le_bytes())?;
            }
        }
        let instance = match meta.get(INSTANCE_KEY)?.and_then(|v| <[u8; 16]>::try_from(v.as_ref()).ok()) {
            Some(id) => id,
            None => {
                let id = random_identity();
                meta.insert(INSTANCE_KEY, &id[..])?;
                id
            }
        };
        // Above every number an earlier process handed out.
        let sequencer = Sequencer::starting_at(db.generate_id()?);
        let counters = db.open_tree("counters")?;
        counters.set_merge_operator(add_u64);
        let entries = db.open_tree("entries")?;
        let vectors = db.open_tree("vectors")?;
        let (count, stored_bytes) = match take_clean_sizes(&db, &meta)? {
            Some(sizes) => sizes,
            None => {
                let (count, entry_bytes) = sizes(&entries)?;
                let (_, vector_bytes) = sizes(&vectors)?;
                (count, entry_bytes + vector_bytes)
            }
        };
        let len = AtomicU64::new(count);
        let bytes = AtomicU64::new(stored_bytes);
        let by_access = db.open_tree("by_access")?;
        let hit_stats = db.open_tree("hit_stats")?;
        let pending = Arc::new(Pending::default());
        let trees =
            FlushTrees { hit_stats: hit_stats.clone(), by_access: by_access.clone(), counters: counters.clone() };
        let flusher = Some(Flusher::spawn(pending.clone(), trees)?);
        Ok(Self {
            by_created: db.open_tree("by_created")?,
            by_expiry: db.open_tree("by_expiry")?,
            by_access,
            hit_stats,
            pending,
            flusher,
            vectors,
            aliases: db.open_tree("aliases")?,
            alias_of: db.open_tree("alias_of")?,
            vector_changes: db.open_tree("vector_changes")?,
            sequencer,
            instance,
            path,
            entries,
            counters,
            db,
            len,
            bytes,
            corrupt: AtomicU64::new(0),
        })
    }

    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    /// Bytes of the cached data: every entry (request, answer and metadata)
    /// and vector as stored, keys and sled's own overhead aside. What
    /// `max_bytes` bounds; the files on disk are larger (see the README).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn account(&self, added: u64, removed: u64) {
        if added >= removed {
            self.bytes.fetch_add(added - removed, Ordering::Relaxed);
        } else {
            let gone = removed - added;
            // Never below zero, whatever a concurrent change did first.
            let _ = self.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(gone)));
        }
    }

    /// Undecodable entries dropped since the store was opened.
    pub fn corrupt_entries(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `entry` (replacing any entry with the same id) and its vector,
    /// all or nothing.
    pub fn put(&self, entry: &Entry, vector: Option<&[f32]>) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(entry)?;
        let id = entry.id;
        let vector_bytes = match (vector, &entry.semantic) {
            (Some(v), Some(meta)) => Some(encode_vector(&meta.fingerprint, v)),
            _ => None,
        };
        let ticket = self.sequencer.begin(&self.db)?;
        let added = (bytes.len() + vector_bytes.as_ref().map_or(0, Vec::len)) as u64;
        let replaced = self.transact(|t| {
            let old = t.entries.insert(&id.0[..], bytes.as_slice())?;
            let mut removed = old.as_ref().map_or(0, |o| o.len() as u64);
            let corrupt = match &old {
                Some(old) => {
                    // A new answer under the same key: what was verified against the old one no longer holds.
                    drop_aliases(&id, t.aliases, t.alias_of)?;
                    unindex_raw(&id, old, t.by_created, t.by_expiry, t.by_access, t.hit_stats)?
                }
                None => false,
            };
            t.by_created.insert(&index_key(entry.created_ms, &id)[..], &[])?;
            t.by_expiry.insert(&index_key(entry.expires_ms, &id)[..], &[])?;
            t.by_access.insert(&index_key(entry.created_ms, &id)[..], &[])?;
            let stats = HitStats { hits: 0, last_access_ms: entry.created_ms };
            t.hit_stats.insert(&id.0[..], &stats.encode())?;
            let old_vector = match &vector_bytes {
                Some(v) => t.vectors.insert(&id.0[..], v.as_slice())?,
                None => t.vectors.remove(&id.0[..])?,
            };
            removed += old_vector.as_ref().map_or(0, |v| v.len() as u64);
            let vector_changed = vector_bytes.is_some() || old_vector.is_some();
            t.log_vector_change(vector_changed, &ticket, &id)?;
            Ok((old.is_some(), corrupt, removed))
        })?;
        drop(ticket);
        let (replaced, corrupt, removed) = replaced;
        self.account(added, removed);
        self.pending.forget(&id);
        if corrupt {
            self.count_corrupt(&id);
        }
        if !replaced {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Rewrites a semantic entry and its vector after the embedding model
    /// changed: the answer, its hit stats, expiry and aliases stay as they
    /// are. Entries without semantic metadata are left alone.
    pub fn replace_vector(&self, entry: &Entry, vector: &[f32]) -> Result<(), StoreError> {
        let Some(meta) = &entry.semantic else { return Ok(()) };
        let bytes = serde_json::to_vec(entry)?;
        let vector_bytes = encode_vector(&meta.fingerprint, vector);
        let id = entry.id;
        let ticket = self.sequencer.begin(&self.db)?;
        let added = (bytes.len() + vector_bytes.len()) as u64;
        let removed = self.transact(|t| {
            let old = t.entries.insert(&id.0[..], bytes.as_slice())?;
            let old_vector = t.vectors.insert(&id.0[..], vector_bytes.as_slice())?;
            t.log_vector_change(true, &ticket, &id)?;
            Ok(old.as_ref().map_or(0, |o| o.len() as u64) + old_vector.as_ref().map_or(0, |v| v.len() as u64))
        })?;
        drop(ticket);
        self.account(added, removed);
        Ok(())
    }

    /// The entry with this id, expired or not. An entry that cannot be decoded
    /// is reported, never served.
    pub fn get(&self, id: &CacheKey) -> Result<Option<Entry>, StoreError> {
        match self.entries.get(id.0)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|_| StoreError::Corrupt(id.to_hex())),
        }
    }

    /// Ids of stored entries whose hex form starts with `hex_prefix` (either
    /// case), in id order, at most `limit` of them: how an operator's short id
    /// is resolved. A prefix that is not hex matches nothing.
    pub fn ids_with_prefix(&self, hex_prefix: &str, limit: usize) -> Result<Vec<CacheKey>, StoreError> {
        let wanted = hex_prefix.to_ascii_lowercase();
        if wanted.len() > 64 || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        // Whole bytes narrow the scan in sled; an odd last digit is checked on the hex.
        let whole = hex::decode(wanted.get(..wanted.len() / 2 * 2).unwrap_or("")).unwrap_or_default();
        let mut out = Vec::new();
        for k in self.entries.scan_prefix(&whole).keys() {
            if out.len() >= limit {
                break;
            }
            let k = k?;
            let Some(id) = k.as_ref().try_into().ok().map(CacheKey) else { continue };
            if id.to_hex().starts_with(&wanted) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Hit count and last access, including hits not yet written to sled.
    pub fn hit_stats(&self, id: &CacheKey) -> Result<HitStats, StoreError> {
        let _read = self.pending.read();
        let stored = self.hit_stats.get(id.0)?.map(|b| HitStats::decode(&b)).unwrap_or_default();
        Ok(match self.pending.hits_of(id) {
            Some(p) => {
                HitStats { hits: stored.hits + p.hits, last_access_ms: stored.last_access_ms.max(p.last_access_ms) }
            }
            None => stored,
        })
    }

    /// Counts a hit and refreshes the entry's place in the LRU order.
    ///
    /// Hits are the hot path: they are counted in memory and written to sled
    /// in batches (see [`HIT_FLUSH_INTERVAL`]), so a hit never writes to sled.
    pub fn record_hit(&self, id: &CacheKey, now_ms: u64) -> Result<HitStats, StoreError> {
        self.pending.hit(id, now_ms);
        self.hit_stats(id)
    }

    /// Removes an entry and everything that points at it. Returns whether it
    /// existed. An entry that cannot be decoded goes too, with whatever index
    /// keys can still be found for it, and is counted in [`Store::corrupt_entries`].
    pub fn remove(&self, id: &CacheKey) -> Result<bool, StoreError> {
        let ticket = self.sequencer.begin(&self.db)?;
        let (existed, corrupt, removed) = self.transact(|t| {
            let Some(old) = t.entries.remove(&id.0[..])? else { return Ok((false, false, 0)) };
            let old_vector = t.vectors.remove(&id.0[..])?;
            t.log_vector_change(old_vector.is_some(), &ticket, id)?;
            drop_aliases(id, t.aliases, t.alias_of)?;
            let corrupt = unindex_raw(id, &old, t.by_created, t.by_expiry, t.by_access, t.hit_stats)?;
            Ok((true, corrupt, (old.len() + old_vector.map_or(0, |v| v.len())) as u64))
        })?;
        drop(ticket);
        self.account(0, removed);
        if existed {
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.pending.forget(id);
        }
        if corrupt {
            self.count_corrupt(id);
        }
        Ok(existed)
    }

    fn count_corrupt(&self, id: &CacheKey) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(entry = %id.to_hex(), "dropped an undecodable cache entry");
    }

    /// Removes up to `limit` entries whose TTL ended at or before `now_ms`,
    /// oldest first. Every expiry key visited is deleted, whatever it points
    /// at, so repeated calls always make progress: keys of entries that are
    /// gone, undecodable or since given another expiry are dropped on the way.
    pub fn sweep_expired(&self, now_ms: u64, limit: usize) -> Result<SweptBatch, StoreError> {
        let end = index_key(now_ms, &CacheKey([0xff; 32]));
        let keys: Vec<sled::IVec> =
            self.by_expiry.range(..=end.as_slice()).keys().take(limit).collect::<Result<_, _>>()?;
        let mut batch = SweptBatch { visited: keys.len(), ..Default::default() };
        for key in keys {
            let Some(id) = id_of_index_key(&key) else {
                self.by_expiry.remove(&key)?;
                continue;
            };
            let key_ms = ms_of_index_key(&key);
            let ticket = self.sequencer.begin(&self.db)?;
            let outcome = self.transact(|t| {
                t.by_expiry.remove(&key)?;
                let Some(bytes) = t.entries.get(&id.0[..])? else {
                    drop_aliases(&id, t.aliases, t.alias_of)?;
                    // The entry is gone: only its access key can still be found.
                    if let Some(stats) = t.hit_stats.remove(&id.0[..])? {
                        t.by_access.remove(&index_key(HitStats::decode(&stats).last_access_ms, &id)[..])?;
                    }
                    return Ok(Swept::Dangling);
                };
                if let Ok(e) = serde_json::from_slice::<Entry>(&bytes) {
                    if e.expires_ms != key_ms {
                        return Ok(Swept::StaleKey);
                    }
                }
                t.entries.remove(&id.0[..])?;
                let old_vector = t.vectors.remove(&id.0[..])?;
                t.log_vector_change(old_vector.is_some(), &ticket, &id)?;
                drop_aliases(&id, t.aliases, t.alias_of)?;
                let corrupt = unindex_raw(&id, &bytes, t.by_created, t.by_expiry, t.by_access, t.hit_stats)?;
                let size = (bytes.len() + old_vector.map_or(0, |v| v.len())) as u64;
                Ok(if corrupt { Swept::Corrupt(size) } else { Swept::Removed(size) })
            })?;
            drop(ticket);
            match outcome {
                Swept::Removed(size) | Swept::Corrupt(size) => {
                    self.account(0, size);
                    self.len.fetch_sub(1, Ordering::Relaxed);
                    self.pending.forget(&id);
                    if matches!(outcome, Swept::Corrupt(_)) {
                        self.count_corrupt(&id);
                    }
                    batch.removed.push(id);
                }
                Swept::Dangling => batch.dangling.push(id),
                Swept::StaleKey => {}
            }
        }
        Ok(batch)
    }

    /// Runs `f` in one transaction over every tree an entry lives in, for
    /// the writes that add or remove one.
    fn transact<R>(&self, f: impl Fn(&EntryTrees<'_>) -> TxResult<R>) -> Result<R, StoreError> {
        let trees = [
            &self.entries,
            &self.by_created,
            &self.by_expiry,
            &self.by_access,
            &self.hit_stats,
            &self.vectors,
            &self.aliases,
            &self.alias_of,
            &self.vector_changes,
        ];
        Ok(trees.as_slice().transaction(|view| {
            let [entries, by_created, by_expiry, by_access, hit_stats, vectors, aliases, alias_of, vector_changes] =
                view.as_slice()
            else {
                return Err(ConflictableTransactionError::Abort(StoreError::Corrupt("transaction trees".into())));
            };
            f(&EntryTrees {
                entries,
                by_created,
                by_expiry,
                by_access,
                hit_stats,
                vectors,
                aliases,
                alias_of,
                vector_changes,
            })
        })?)
    }

    /// Makes `alias` (a request's exact key) an alias of entry `id`, if the
    /// entry exists, learned at `similarity` (what the two texts' differing
    /// parts scored). Returns whether it was written. The alias goes when the
    /// entry goes: TTL sweeps, deletion, purges and replacement remove it.
    pub fn add_alias(&self, alias: &CacheKey, id: &CacheKey, similarity: f32) -> Result<bool, StoreError> {
        if alias == id {
            return Ok(false);
        }
        // The entry's id, then the similarity it was learned at.
        let mut value = id.0.to_vec();
        value.extend_from_slice(&similarity.to_le_bytes());
        let written = (&self.entries, &self.aliases, &self.alias_of).transaction(|(entries, aliases, alias_of)| {
            if entries.get(&id.0[..])?.is_none() {
                return Ok(false);
            }
            aliases.insert(&alias.0[..], value.as_slice())?;
            let mut list = alias_of.get(&id.0[..])?.map(|v| v.to_vec()).unwrap_or_default();
            if !list.chunks_exact(32).any(|k| k == &alias.0[..]) {
                list.extend_from_slice(&alias.0[..]);
                alias_of.insert(&id.0[..], list)?;
            }
            Ok::<_, ConflictableTransactionError<StoreError>>(true)
        })?;
        Ok(written)
    }

    /// The entry id `key` is an alias of, if any. The entry itself may be
    /// gone or expired: callers check.
    pub fn alias(&self, key: &CacheKey) -> Result<Option<CacheKey>, StoreError> {
        Ok(self.alias_learned(key)?.map(|(id, _)| id))
    }

    /// The entry id `key` is an alias of and the similarity the alias was
    /// learned at (0 for an alias stored before similarities were kept).
    pub fn alias_learned(&self, key: &CacheKey) -> Result<Option<(CacheKey, f32)>, StoreError> {
        let Some(v) = self.aliases.get(key.0)? else { return Ok(None) };
        let Some(id) = v.get(..32).and_then(|b| <[u8; 32]>::try_from(b).ok()) else { return Ok(None) };
        let similarity = v.get(32..36).and_then(|b| <[u8; 4]>::try_from(b).ok()).map_or(0.0, f32::from_le_bytes);
        Ok(Some((CacheKey(id), similarity)))
    }

    /// The aliases of entry `id`.
    pub fn aliases_of(&self, id: &CacheKey) -> Result<Vec<CacheKey>, StoreError> {
        Ok(self
            .alias_of
            .get(id.0)?
            .map(|v| v.chunks_exact(32).filter_map(|c| c.try_into().ok()).map(CacheKey).collect())
            .unwrap_or_default())
    }

    /// Ids of entries whose TTL ended at or before `now_ms`, oldest first.
    pub fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<CacheKey>, StoreError> {
        let end = index_key(now_ms, &CacheKey([0xff; 32]));
        let mut out = Vec::new();
        for kv in self.by_expiry.range(..=end.as_slice()).take(limit) {
            let (k, _) = kv?;
            out.extend(id_of_index_key(&k));
        }
        Ok(out)
    }

    /// Removes up to `limit` least recently used entries; returns their ids.
    /// Every access key visited is deleted, so repeated calls always make
    /// progress: keys that point at nothing, or at an entry accessed since,
    /// are dropped on the way.
    pub fn evict_least_recently_used(&self, limit: usize) -> Result<Vec<CacheKey>, StoreError> {
        self.flush_pending()?;
        let mut evicted = Vec::new();
        let mut scanned = 0;
        while evicted.len() < limit && scanned < limit * 4 + 16 {
            let Some((k, _)) = self.by_access.first()? else { break };
            scanned += 1;
            let Some(id) = id_of_index_key(&k) else {
                self.by_access.remove(&k)?;
                continue;
            };
            let current = self.hit_stats.get(id.0)?.map(|b| HitStats::decode(&b).last_access_ms);
            if current.is_none_or(|ms| ms == ms_of_index_key(&k)) && self.remove(&id)? {
                evicted.push(id);
            }
            self.by_access.remove(&k)?;
        }
        Ok(evicted)
    }

    /// Ids of the least recently used entries.
    pub fn least_recently_used(&self, limit: usize) -> Result<Vec<CacheKey>, StoreError> {
        self.flush_pending()?;
        let mut out = Vec::new();
        for kv in self.by_access.iter().take(limit) {
            let (k, _) = kv?;
            out.extend(id_of_index_key(&k));
        }
        Ok(out)
    }

    /// Entries newest first, from `cursor` (exclusive), matching `filter`.
    pub fn list(&self, filter: &ListFilter, cursor: Option<&str>, limit: usize) -> Result<ListPage, StoreError> {
        let upper = cursor.and_then(decode_cursor);
        let iter = match &upper {
            Some(c) => self.by_created.range(..c.as_slice()),
            None => self.by_created.iter(),
        };
        let mut entries = Vec::new();
        let mut last_key = None;
        for kv in iter.rev() {
            let (k, _) = kv?;
            let Some(id) = id_of_index_key(&k) else { continue };
            last_key = Some(k.to_vec());
            let entry = match self.get(&id) {
                Ok(Some(entry)) => entry,
                Ok(None) => {
                    self.drop_dangling_created_key(&id, &k)?;
                    continue;
                }
                Err(StoreError::Corrupt(_)) => continue,
                Err(e) => return Err(e),
            };
            if filter.matches(&entry) {
                let stats = self.hit_stats(&id)?;
                entries.push((entry, stats));
                if entries.len() == limit {
                    break;
                }
            }
        }
        let next_cursor = if entries.len() == limit { last_key.map(|k| encode_cursor(&k)) } else { None };
        Ok(ListPage { entries, next_cursor })
    }

    /// Drops a listing key whose entry is gone, unless the entry came back.
    fn drop_dangling_created_key(&self, id: &CacheKey, key: &[u8]) -> Result<(), StoreError> {
        (&self.entries, &self.by_created).transaction(|(entries, by_created)| {
            if entries.get(&id.0[..])?.is_none() {
                by_created.remove(key)?;
            }
            Ok::<_, ConflictableTransactionError<StoreError>>(())
        })?;
        Ok(())
    }

    /// Ids of every entry matching `filter`.
    pub fn matching(&self, filter: &ListFilter) -> Result<Vec<CacheKey>, StoreError> {
        let mut out = Vec::new();
        for kv in self.entries.iter() {
            let (k, v) = kv?;
            let Some(id) = k.as_ref().try_into().ok().map(CacheKey) else { continue };
            match serde_json::from_slice::<Entry>(&v) {
                Ok(e) if filter.matches(&e) => out.push(id),
                Ok(_) => {}
                Err(_) => out.push(id),
            }
        }
        Ok(out)
    }

    /// Every persisted vector: the source of truth the semantic index is rebuilt from.
    pub fn vectors(&self) -> impl Iterator<Item = Result<StoredVector, StoreError>> + '_ {
        self.vectors.iter().map(|kv| {
            let (k, v) = kv?;
            let id =
                k.as_ref().try_into().ok().map(CacheKey).ok_or_else(|| StoreError::Corrupt("vector key".into()))?;
            decode_vector(&v)
                .map(|(fingerprint, vector)| StoredVector { id, fingerprint, vector })
                .ok_or_else(|| StoreError::Corrupt(id.to_hex()))
        })
    }

    /// The vector stored for `id`, with the fingerprint it may be matched under.
    pub fn stored_vector(&self, id: &CacheKey) -> Result<Option<StoredVector>, StoreError> {
        Ok(self.vectors.get(id.0)?.and_then(|v| decode_vector(&v)).map(|(fingerprint, vector)| StoredVector {
            id: *id,
            fingerprint,
            vector,
        }))
    }

    /// Every vector change numbered at or below this has been written: a
    /// saved index that reflects them records it, and later changes get
    /// higher numbers.
    pub fn vector_seq(&self) -> u64 {
        self.sequencer.stable()
    }

    /// `(seq, id)` of each vector change numbered above `after`, in order.
    /// An id may appear more than once; its current vector is what counts.
    pub fn vector_changes_after(&self, after: u64) -> impl Iterator<Item = Result<(u64, CacheKey), StoreError>> + '_ {
        let from = after.saturating_add(1).to_be_bytes();
        self.vector_changes.range(from..).map(|kv| {
            let (k, v) = kv?;
            let seq = <[u8; 8]>::try_from(k.as_ref()).map(u64::from_be_bytes);
            let id = <[u8; 32]>::try_from(v.as_ref()).map(CacheKey);
            match (seq, id) {
                (Ok(seq), Ok(id)) => Ok((seq, id)),
                _ => Err(StoreError::Corrupt("vector change".into())),
            }
        })
    }

    /// Drops the change log up to `through`, once a saved index no longer
    /// needs it. Recorded first, so a reader never trusts a log with holes.
    pub fn forget_vector_changes(&self, through: u64) -> Result<usize, StoreError> {
        if through > self.vector_changes_forgotten()? {
            self.set_meta(FORGOTTEN_KEY, &through.to_be_bytes())?;
        }
        let mut removed = 0;
        for k in self.vector_changes.range(..=through.to_be_bytes()).keys() {
            self.vector_changes.remove(k?)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The change log holds nothing at or below this number.
    pub fn vector_changes_forgotten(&self) -> Result<u64, StoreError> {
        Ok(self.meta(FORGOTTEN_KEY)?.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map_or(0, u64::from_be_bytes))
    }

    /// Changes the log holds (a scan: for tests and statistics).
    pub fn vector_changes_len(&self) -> usize {
        self.vector_changes.len()
    }

    /// A random identity given to this store when it was created, so files
    /// saved next to it are never applied to another store.
    pub fn instance(&self) -> [u8; 16] {
        self.instance
    }

    /// The directory the store lives in; `None` for a temporary store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn vector(&self, id: &CacheKey) -> Result<Option<Vec<f32>>, StoreError> {
        Ok(self.vectors.get(id.0)?.and_then(|v| decode_vector(&v)).map(|(_, v)| v))
    }

    /// Counted in memory, written with the hits (see [`HIT_FLUSH_INTERVAL`]).
    pub fn add(&self, counter: Counter, delta: u64) -> Result<(), StoreError> {
        if delta > 0 {
            self.pending.add(counter, delta);
        }
        Ok(())
    }

    pub fn add_spent_by_model(&self, model: &str, nano_usd: u64) -> Result<(), StoreError> {
        if nano_usd > 0 {
            self.pending.add(Counter::NanoUsdSpent, nano_usd);
            self.pending.add_spent_by_model(model, nano_usd);
        }
        Ok(())
    }

    /// The counter's value, increments not yet written included.
    pub fn counter(&self, counter: Counter) -> Result<u64, StoreError> {
        let _read = self.pending.read();
        Ok(read_u64(self.counters.get(counter.key())?.as_deref()).saturating_add(self.pending.counter(counter)))
    }

    /// Adds to a counter named by the caller (`spend:{client}:d:{day}`);
    /// written to sled with the other pending counters.
    pub fn add_named(&self, key: String, delta: u64) {
        if delta > 0 {
            self.pending.add_keyed(key, delta);
        }
    }

    /// A counter named by the caller, increments not yet written included.
    pub fn named(&self, key: &str) -> Result<u64, StoreError> {
        let _read = self.pending.read();
        Ok(read_u64(self.counters.get(key)?.as_deref()).saturating_add(self.pending.keyed(key)))
    }

    /// Nano-USD spent on misses, per model that answered.
    pub fn spent_by_model(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let _read = self.pending.read();
        let mut out = BTreeMap::new();
        for kv in self.counters.scan_prefix(SPENT_BY_MODEL_PREFIX) {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(k.get(SPENT_BY_MODEL_PREFIX.len()..).unwrap_or_default()).into_owned();
            out.insert(name, read_u64(Some(&v)));
        }
        for (model, nano) in self.pending.spent_by_model() {
            let total = out.entry(model).or_insert(0);
            *total = total.saturating_add(nano);
        }
        Ok(out)
    }

    /// Counts one verifier call made for `namespace` and what it cost.
    pub fn add_verification(&self, namespace: &str, nano_usd: u64) {
        self.pending.add_keyed(format!("{VERIFICATIONS_PREFIX}{namespace}"), 1);
        if nano_usd > 0 {
            self.pending.add_keyed(format!("{VERIFICATION_NANO_USD_PREFIX}{namespace}"), nano_usd);
        }
    }

    /// Verifier calls and their cost, per namespace.
    pub fn verifications_by_namespace(&self) -> Result<BTreeMap<String, Verifications>, StoreError> {
        let _read = self.pending.read();
        let mut out: BTreeMap<String, Verifications> = BTreeMap::new();
        for (prefix, is_calls) in [(VERIFICATIONS_PREFIX, true), (VERIFICATION_NANO_USD_PREFIX, false)] {
            let mut add = |key: &str, n: u64| {
                let ns = key.get(prefix.len()..).unwrap_or_default().to_string();
                let v = out.entry(ns).or_default();
                let slot = if is_calls { &mut v.calls } else { &mut v.nano_usd };
                *slot = slot.saturating_add(n);
            };
            for kv in self.counters.scan_prefix(prefix) {
                let (k, v) = kv?;
                add(&String::from_utf8_lossy(&k), read_u64(Some(&v)));
            }
            for (k, n) in self.pending.keyed_with_prefix(prefix) {
                add(&k, n);
            }
        }
        Ok(out)
    }

    /// Writes pending hit counts, access times and counter increments to sled.
    fn flush_pending(&self) -> Result<(), StoreError> {
        self.pending.flush(&self.flush_trees())
    }

    fn flush_trees(&self) -> FlushTrees {
        FlushTrees {
            hit_stats: self.hit_stats.clone(),
            by_access: self.by_access.clone(),
            counters: self.counters.clone(),
        }
    }

    /// Writes everything pending and waits until sled has it on disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flush_pending()?;
        self.db.flush()?;
        Ok(())
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// A small value kept in the `meta` tree (such as the fleet's position in
    /// its events stream), durable like everything else in sled.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.open_tree("meta")?.get(key)?.map(|v| v.to_vec()))
    }

    /// Sets a value in the `meta` tree.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.db.open_tree("meta")?.insert(key, value)?;
        Ok(())
    }
}

type TxResult<R> = Result<R, ConflictableTransactionError<StoreError>>;

/// The trees an entry lives in, inside one transaction.
struct EntryTrees<'a> {
    entries: &'a TransactionalTree,
    by_created: &'a TransactionalTree,
    by_expiry: &'a TransactionalTree,
    by_access: &'a TransactionalTree,
    hit_stats: &'a TransactionalTree,
    vectors: &'a TransactionalTree,
    aliases: &'a TransactionalTree,
    alias_of: &'a TransactionalTree,
    vector_changes: &'a TransactionalTree,
}

impl EntryTrees<'_> {
    /// Notes, in the same transaction, that `id`'s vector changed.
    fn log_vector_change(&self, changed: bool, ticket: &Ticket<'_>, id: &CacheKey) -> TxResult<()> {
        if changed {
            self.vector_changes.insert(&ticket.seq.to_be_bytes()[..], &id.0[..])?;
        }
        Ok(())
    }
}

/// Removes the aliases of entry `id`; an alias since pointed at another entry stays.
fn drop_aliases(
    id: &CacheKey,
    aliases: &TransactionalTree,
    alias_of: &TransactionalTree,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let Some(list) = alias_of.remove(&id.0[..])? else { return Ok(()) };
    for alias in list.chunks_exact(32) {
        if aliases.get(alias)?.is_some_and(|target| target.get(..32) == Some(&id.0[..])) {
            aliases.remove(alias)?;
        }
    }
    Ok(())
}

fn unindex(
    old: &Entry,
    by_created: &TransactionalTree,
    by_expiry: &TransactionalTree,
    by_access: &TransactionalTree,
    hit_stats: &TransactionalTree,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    by_created.remove(&index_key(old.created_ms, &old.id)[..])?;
    by_expiry.remove(&index_key(old.expires_ms, &old.id)[..])?;
    if let Some(stats) = hit_stats.remove(&old.id.0[..])? {
        by_access.remove(&index_key(HitStats::decode(&stats).last_access_ms, &old.id)[..])?;
    }
    Ok(())
}

/// What one expiry key led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Swept {
    /// Removed, with the bytes it held.
    Removed(u64),
    Corrupt(u64),
    /// The entry was already gone.
    Dangling,
    /// The entry lives on under another expiry.
    StaleKey,
}

/// The timestamps of an entry, read leniently from bytes that no longer
/// decode as a whole [`Entry`], to find its index keys.
#[derive(serde::Deserialize)]
struct Times {
    created_ms: u64,
    expires_ms: u64,
}

/// Unindexes the entry stored as `old`. Returns whether it was undecodable;
/// its keys are then found from whatever can still be read.
/// How many values a tree holds and their bytes, in one scan.
fn sizes(tree: &sled::Tree) -> Result<(u64, u64), sled::Error> {
    let (mut count, mut bytes) = (0u64, 0u64);
    for kv in tree.iter() {
        let (_, v) = kv?;
        count += 1;
        bytes += v.len() as u64;
    }
    Ok((count, bytes))
}

fn unindex_raw(
    id: &CacheKey,
    old: &[u8],
    by_created: &TransactionalTree,
    by_expiry: &TransactionalTree,
    by_access: &TransactionalTree,
    hit_stats: &TransactionalTree,
) -> Result<bool, ConflictableTransactionError<StoreError>> {
    if let Ok(old) = serde_json::from_slice::<Entry>(old) {
        if old.id == *id {
            unindex(&old, by_created, by_expiry, by_access, hit_stats)?;
            return Ok(false);
        }
    }
    if let Ok(t) = serde_json::from_slice::<Times>(old) {
        by_created.remove(&index_key(t.created_ms, id)[..])?;
        by_expiry.remove(&index_key(t.expires_ms, id)[..])?;
    }
    if let Some(stats) = hit_stats.remove(&id.0[..])? {
        by_access.remove(&index_key(HitStats::decode(&stats).last_access_ms, id)[..])?;
    }
    Ok(true)
}

fn read_u64(b: Option<&[u8]>) -> u64 {
    b.and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

fn encode_vector(fingerprint_hex: &str, v: &[f32]) -> Vec<u8> {
    let fp = CacheKey::from_hex(fingerprint_hex).map(|k| k.0).unwrap_or([0; 32]);
    let mut out = Vec::with_capacity(32 + v.len() * 4);
    out.extend_from_slice(&fp);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn decode_vector(b: &[u8]) -> Option<([u8; 32], Vec<f32>)> {
    let (fp, rest) = b.split_first_chunk::<32>()?;
    if !rest.len().is_multiple_of(4) {
        return None;
    }
    let v = rest.chunks_exact(4).map(|c| c.try_into().ok().map(f32::from_le_bytes)).collect::<Option<_>>()?;
    Some((*fp, v))
}

fn encode_cursor(k: &[u8]) -> String {
    hex::encode(k)
}

fn decode_cursor(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok().filter(|k| k.len() == 40)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
