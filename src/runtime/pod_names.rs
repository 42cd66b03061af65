//! Pod names unique within a namespace across every Job of this process, as the API server
//! keeps them: each Job claims its pods' names here (through the controller's name hook) and
//! gives them back when the Job is gone. Two Jobs can otherwise draw the same name: Job `a-2`
//! and index 2 of Indexed Job `a` share the prefix `a-2-`, and so do two Jobs of one name.

use crate::controller::names::{name_hash, NameHashes};
use std::sync::{Arc, Mutex, MutexGuard};

/// Hashes of (namespace, name) of every live pod name of the process. A hash collision of
/// two different names costs a needless retry, never a duplicate.
static LIVE: Mutex<Option<NameHashes>> = Mutex::new(None);

/// The names one Job claimed; they are freed when it is dropped.
pub struct JobNames {
    namespace: String,
    claimed: Mutex<Vec<u64>>,
}

impl JobNames {
    pub fn new(namespace: &str) -> Arc<Self> {
        Arc::new(Self { namespace: namespace.to_string(), claimed: Mutex::new(Vec::new()) })
    }

    /// Takes `name` if no live pod of the namespace has it. Returns whether it did.
    pub fn claim(&self, name: &str) -> bool {
        let hash = name_hash(&[self.namespace.as_bytes(), b"/", name.as_bytes()]);
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        if !live.get_or_insert_with(NameHashes::default).insert(hash) {
            return false;
        }
        drop(live);
        self.claimed.lock().unwrap_or_else(|e| e.into_inner()).push(hash);
        true
    }
}

/// The lock on the live names, held across a fork (see `super::fork`): the runtime thread
/// takes it for every pod it creates, and a child inheriting it locked could never create one.
pub(super) struct LiveGuard(MutexGuard<'static, Option<NameHashes>>);

impl LiveGuard {
    pub(super) fn take() -> Self {
        Self(LIVE.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// In a forked child: the names are the parent's Jobs' (never released there, as the
    /// child never drops the parent's Jobs); the child's namespace starts empty.
    pub(super) fn forget_parent(mut self) {
        std::mem::forget(self.0.take());
    }
}

impl Drop for JobNames {
    fn drop(&mut self) {
        let claimed = std::mem::take(self.claimed.get_mut().unwrap_or_else(|e| e.into_inner()));
        if let Some(live) = LIVE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            for hash in claimed {
                live.remove(&hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_taken_once_per_namespace_until_its_job_is_gone() {
        let a = JobNames::new("ns-test-a");
        let b = JobNames::new("ns-test-a");
        let other = JobNames::new("ns-test-b");
        assert!(a.claim("x-2-bcdfg"));
        assert!(!b.claim("x-2-bcdfg"));
        assert!(!a.claim("x-2-bcdfg"));
        assert!(other.claim("x-2-bcdfg"));
        drop(a);
        assert!(b.claim("x-2-bcdfg"));
    }
}
