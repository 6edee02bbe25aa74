//! Keys of the time-ordered indexes (`by_created`, `by_expiry`, `by_access`):
//! a big-endian millisecond stamp followed by the entry's id, so sled's key
//! order is time order. Both the store and the flush of pending hits write
//! them, so they live here rather than in either.

use deja_api::CacheKey;

pub(crate) fn index_key(ms: u64, id: &CacheKey) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&ms.to_be_bytes());
    k[8..].copy_from_slice(&id.0[..]);
    k
}

pub(crate) fn ms_of_index_key(k: &[u8]) -> u64 {
    k.get(..8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_be_bytes)
}

pub(crate) fn id_of_index_key(k: &[u8]) -> Option<CacheKey> {
    k.get(8..40).and_then(|s| s.try_into().ok()).map(CacheKey)
}
