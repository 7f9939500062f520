//! Id pools: 1-based ids, never handing out a live id twice.

use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::types::Id;

/// A pool of ids `1..=max` (`src/id_pool.c`).
///
/// Like upstream, `get` scans upward from the last id handed out, so a released id is not
/// reused until the top is reached (ids stay unique for as long as possible, which makes stale
/// ids in logs and on the wire easy to tell apart); then it wraps and reclaims lower ids.
#[derive(Debug)]
pub struct IdPool {
    what: &'static str,
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    used: Vec<bool>,
    last: usize,
}

impl IdPool {
    /// A pool of `max` ids named `what` ("session", "resource") in messages.
    pub fn new(what: &'static str, max: usize) -> Self {
        IdPool {
            what,
            state: Mutex::new(PoolState {
                used: vec![false; max],
                last: max.saturating_sub(1),
            }),
        }
    }

    /// Takes a free id; `EUSERS` when none is left.
    pub fn get(&self) -> Result<Id> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let max = state.used.len();
        for step in 1..=max {
            let index = (state.last + step) % max;
            if index == 0 && step > 1 {
                log::warn!("Reached max ID ({max})");
                log::warn!("Trying to reclaim lower IDs");
            }
            if let Some(slot) = state.used.get_mut(index)
                && !*slot
            {
                *slot = true;
                state.last = index;
                return Ok(index as Id + 1);
            }
        }
        Err(Error::IdsExhausted(self.what))
    }

    /// Returns an id; returning a free or out-of-range id is an error (`EPERM`-class misuse is
    /// reported as `EINVAL` here because it can only be a runtime bug).
    pub fn put(&self, id: Id) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let slot = usize::try_from(id - 1)
            .ok()
            .and_then(|i| state.used.get_mut(i))
            .ok_or_else(|| Error::invalid(format!("{} id {id} is out of range", self.what)))?;
        if !*slot {
            log::warn!("Could not return {} ID {id} to pool", self.what);
            return Err(Error::invalid(format!(
                "{} id {id} is not in use",
                self.what
            )));
        }
        *slot = false;
        Ok(())
    }

    /// Raises the pool to `max` ids (never lowers it): ids in use stay valid, and the new ones
    /// come after them. A multi-tenant server (the agent) sizes its pools so that its per-client
    /// quotas, not upstream's pool sizes, bind.
    pub fn grow(&self, max: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let len = state.used.len();
        if max > len {
            // The scan starts after `last`: a pool at its top (fresh, or last handed out its
            // highest id) stays at the top, so a fresh pool still starts at 1.
            let at_top = state.last + 1 == len;
            state.used.resize(max, false);
            if at_top {
                state.last = max - 1;
            }
        }
    }

    /// How many ids the pool holds.
    pub fn capacity(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.used.len()
    }

    /// How many ids are in use.
    pub fn in_use(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.used.iter().filter(|u| **u).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn ids_start_at_one_and_are_not_reused_early() {
        let pool = IdPool::new("test", 3);
        assert_eq!(pool.get().unwrap(), 1);
        assert_eq!(pool.get().unwrap(), 2);
        pool.put(1).unwrap();
        assert_eq!(pool.get().unwrap(), 3);
        // Wraps to reclaim 1.
        assert_eq!(pool.get().unwrap(), 1);
        assert_eq!(pool.get().unwrap_err().code(), ErrorCode::EUSERS);
        assert!(pool.put(0).is_err());
        assert!(pool.put(4).is_err());
        pool.put(2).unwrap();
        assert!(pool.put(2).is_err());
        assert_eq!(pool.in_use(), 2);
    }

    #[test]
    fn a_fresh_grown_pool_starts_at_one() {
        let pool = IdPool::new("test", 1024);
        pool.grow(1 << 20);
        assert_eq!(pool.get().unwrap(), 1);
        assert_eq!(pool.get().unwrap(), 2);
    }

    #[test]
    fn a_grown_pool_keeps_its_ids_and_hands_out_new_ones() {
        let pool = IdPool::new("test", 2);
        assert_eq!(pool.get().unwrap(), 1);
        assert_eq!(pool.get().unwrap(), 2);
        assert!(pool.get().is_err());
        pool.grow(1);
        assert_eq!(pool.capacity(), 2, "never lowered");
        pool.grow(4);
        assert_eq!(pool.capacity(), 4);
        assert_eq!(pool.get().unwrap(), 3);
        pool.put(1).unwrap();
        assert_eq!(pool.get().unwrap(), 4);
        assert_eq!(pool.get().unwrap(), 1);
        assert_eq!(pool.in_use(), 4);
    }

    #[test]
    fn concurrent_get_and_put_never_duplicate_live_ids() {
        let pool = Arc::new(IdPool::new("test", 64));
        let live = Arc::new(Mutex::new(HashSet::new()));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let pool = Arc::clone(&pool);
                let live = Arc::clone(&live);
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let id = pool.get().unwrap();
                        assert!(live.lock().unwrap().insert(id), "id {id} handed out twice");
                        live.lock().unwrap().remove(&id);
                        pool.put(id).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(pool.in_use(), 0);
    }
}
