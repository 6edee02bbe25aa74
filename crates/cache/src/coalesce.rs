//! Request coalescing ("single flight"): the first of identical concurrent
//! requests leads and calls upstream; the others wait for its result. If the
//! leader goes away without a result, followers are woken, never left hanging.

use deja_api::CacheKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

pub struct Coalescer<T: Clone> {
    inflight: Arc<Mutex<HashMap<CacheKey, broadcast::Sender<T>>>>,
}

impl<T: Clone> Default for Coalescer<T> {
    fn default() -> Self {
        Self { inflight: Arc::default() }
    }
}

pub enum Role<T: Clone> {
    Leader(Leader<T>),
    /// Receives the leader's result, or `Err` if the leader vanished.
    Follower(broadcast::Receiver<T>),
}

/// Held by the request doing the work; publishing or dropping it releases the key.
pub struct Leader<T: Clone> {
    key: CacheKey,
    inflight: Arc<Mutex<HashMap<CacheKey, broadcast::Sender<T>>>>,
    published: bool,
}

impl<T: Clone> Coalescer<T> {
    pub fn join(&self, key: CacheKey) -> Role<T> {
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(&key) {
            return Role::Follower(tx.subscribe());
        }
        let (tx, _) = broadcast::channel(1);
        map.insert(key, tx);
        Role::Leader(Leader { key, inflight: self.inflight.clone(), published: false })
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl<T: Clone> Leader<T> {
    /// Hands `value` to every follower and releases the key.
    pub fn publish(mut self, value: T) {
        self.published = true;
        let tx = self.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.key);
        if let Some(tx) = tx {
            let _ = tx.send(value);
        }
    }
}

impl<T: Clone> Drop for Leader<T> {
    fn drop(&mut self) {
        // Without a publish, dropping the sender closes the channel: followers wake with an error.
        // After a publish the key may already belong to a new leader: leave it alone.
        if self.published {
            return;
        }
        self.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_value() {
        let c: Coalescer<u32> = Coalescer::default();
        let Role::Leader(leader) = c.join(CacheKey([1; 32])) else { panic!("first is leader") };
        let Role::Follower(mut f) = c.join(CacheKey([1; 32])) else { panic!("second follows") };
        assert!(matches!(c.join(CacheKey([2; 32])), Role::Leader(_)));
        leader.publish(7);
        assert_eq!(f.recv().await.ok(), Some(7));
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn followers_wake_when_the_leader_vanishes() {
        let c: Coalescer<u32> = Coalescer::default();
        let leader = c.join(CacheKey([1; 32]));
        let Role::Follower(mut f) = c.join(CacheKey([1; 32])) else { panic!("follower") };
        drop(leader);
        assert!(f.recv().await.is_err());
        assert!(matches!(c.join(CacheKey([1; 32])), Role::Leader(_)));
    }
}
