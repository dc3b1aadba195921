//! Single flight: one fetch from an upstream per key at a time in this process. Whoever holds
//! a key's guard fetches; the others wait for it, then find what it stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::OwnedMutexGuard;

/// Locks by key, each made on first use and gone once nobody holds or waits for it.
#[derive(Default)]
pub(crate) struct Flights {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl Flights {
    /// Waits for `key`'s turn. The guard may move into a task that finishes the fetch.
    pub(crate) async fn enter(&self, key: String) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() > 1024 {
                map.retain(|_, w| w.strong_count() > 0);
            }
            match map.get(&key).and_then(Weak::upgrade) {
                Some(l) => l,
                None => {
                    let l = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key, Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_key_and_other_keys_run_alongside() {
        let f = Arc::new(Flights::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (f, inside, most) = (f.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _g = f.enter("k".into()).await;
                let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2 + i % 3)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        let other = f.enter("other".into()).await;
        for t in tasks {
            t.await.unwrap();
        }
        drop(other);
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(f.locks.lock().unwrap().values().all(|w| w.strong_count() == 0));
    }
}
