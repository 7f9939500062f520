//! Loaded models, per (session, resource).
//!
//! Ids are reused after release, so nothing may outlive its session or resource: the plugin's
//! `resource_unregister` and `session_release` hooks drop the entries. Generic over the model
//! type so the bookkeeping is tested without libtorch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vaccel_core::Id;

type Slot<M> = Arc<Mutex<Option<Arc<M>>>>;

/// Models keyed by (session id, resource id), each loaded at most once while cached.
#[derive(Debug)]
pub struct ModelCache<M> {
    slots: Mutex<HashMap<(Id, Id), Slot<M>>>,
    loads: AtomicUsize,
}

impl<M> Default for ModelCache<M> {
    fn default() -> Self {
        ModelCache {
            slots: Mutex::new(HashMap::new()),
            loads: AtomicUsize::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<M> ModelCache<M> {
    /// The model cached for (`sess`, `res`), or the one `load` makes now. Concurrent callers
    /// for the same pair wait for one load instead of loading twice; a failed load caches
    /// nothing, so the next call tries again.
    // Without libtorch nothing is ever loaded; the bookkeeping is still built and tested.
    #[cfg_attr(not(feature = "libtorch"), allow(dead_code))]
    pub fn get_or_load<E>(
        &self,
        sess: Id,
        res: Id,
        load: impl FnOnce() -> Result<M, E>,
    ) -> Result<Arc<M>, E> {
        let slot = Arc::clone(lock(&self.slots).entry((sess, res)).or_default());
        let mut slot = lock(&slot);
        if let Some(model) = &*slot {
            return Ok(Arc::clone(model));
        }
        let model = Arc::new(load()?);
        self.loads.fetch_add(1, Ordering::Relaxed);
        *slot = Some(Arc::clone(&model));
        Ok(model)
    }

    /// How many models were loaded since the cache was made.
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::Relaxed)
    }

    /// How many models are cached now.
    pub fn len(&self) -> usize {
        lock(&self.slots)
            .values()
            .filter(|slot| lock(slot).is_some())
            .count()
    }

    /// Whether nothing is cached.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the model of one resource in one session (a run already holding it finishes).
    pub fn forget_resource(&self, sess: Id, res: Id) {
        lock(&self.slots).remove(&(sess, res));
    }

    /// Drops every model of a session.
    pub fn forget_session(&self, sess: Id) {
        lock(&self.slots).retain(|(s, _), _| *s != sess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_once_per_session_and_resource() {
        let cache = ModelCache::<String>::default();
        let load = |name: &str| {
            let name = name.to_owned();
            move || Ok::<_, ()>(name)
        };
        let a = cache.get_or_load(1, 7, load("a")).unwrap();
        let again = cache.get_or_load(1, 7, load("not loaded")).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(cache.loads(), 1);
        cache.get_or_load(2, 7, load("b")).unwrap();
        cache.get_or_load(1, 8, load("c")).unwrap();
        assert_eq!((cache.loads(), cache.len()), (3, 3));

        cache.forget_resource(1, 7);
        assert_eq!(cache.len(), 2);
        assert_eq!(*cache.get_or_load(1, 7, load("a2")).unwrap(), "a2");
        cache.forget_session(1);
        assert_eq!(cache.len(), 1);
        cache.forget_session(2);
        assert!(cache.is_empty());
        // A run holding a model keeps it alive after it is forgotten.
        assert_eq!(*a, "a");
    }

    #[test]
    fn failed_loads_are_not_cached() {
        let cache = ModelCache::<u32>::default();
        assert_eq!(cache.get_or_load(1, 1, || Err("bad")), Err("bad"));
        assert!(cache.is_empty());
        assert_eq!(
            cache.get_or_load(1, 1, || Ok::<_, &str>(5)),
            Ok(Arc::new(5))
        );
        assert_eq!(cache.loads(), 1);
    }

    #[test]
    fn concurrent_callers_share_one_load() {
        let cache = Arc::new(ModelCache::<usize>::default());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    cache
                        .get_or_load(1, 1, || {
                            std::thread::sleep(std::time::Duration::from_millis(10));
                            Ok::<_, ()>(i)
                        })
                        .unwrap()
                })
            })
            .collect();
        let first = threads
            .into_iter()
            .map(|t| *t.join().unwrap())
            .collect::<Vec<_>>();
        assert!(first.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(cache.loads(), 1);
    }
}
