//! Idle pods: active pods that a sync has nothing to do with but count. A Job at
//! `parallelism=100000` holds that many of them while only a few change between two syncs;
//! keeping them out of the controller's per-sync passes makes a sync cost what changed, not
//! what runs. Only their totals (how many, how many ready, their restarts, the indexes they
//! hold) take part in a sync.
//!
//! A pod is idle only while nothing about it can change without news: any event about it, or
//! the controller deciding to delete it, wakes it first (see `Controller::wake`).

use super::indexed::IndexBits;
use super::pod::{Pod, PodId};
use std::collections::BTreeSet;

pub(super) struct IdlePods {
    ids: BTreeSet<PodId>,
    ready: u32,
    restarts: u64,
    /// The indexes the idle pods hold, each by one pod only (`[0, completions)`).
    indexes: IndexBits,
}

impl IdlePods {
    /// `index_bound`: the Job's `completions` for an Indexed Job, 0 otherwise.
    pub(super) fn new(index_bound: u32) -> Self {
        Self { ids: BTreeSet::new(), ready: 0, restarts: 0, indexes: IndexBits::with_bound(index_bound) }
    }

    /// Makes `pod` idle unless another idle pod holds its index (duplicates are the sync's
    /// business). The caller has checked that nothing else about the pod needs a sync.
    pub(super) fn insert(&mut self, pod: &Pod) -> bool {
        if let Some(ix) = pod.index {
            if self.indexes.contains(ix) {
                return false;
            }
            self.indexes.insert(ix);
        }
        self.ids.insert(pod.id);
        self.ready += u32::from(pod.ready);
        self.restarts += u64::from(pod.restart_count);
        true
    }

    /// Takes `pod` out of the idle set; returns whether it was idle. The pod must not have
    /// changed since it was inserted.
    pub(super) fn remove(&mut self, pod: &Pod) -> bool {
        if !self.ids.remove(&pod.id) {
            return false;
        }
        if let Some(ix) = pod.index {
            self.indexes.remove(ix);
        }
        self.ready -= u32::from(pod.ready);
        self.restarts -= u64::from(pod.restart_count);
        true
    }

    /// Empties the set (with a new index bound) and returns the pods that were idle.
    pub(super) fn take_all(&mut self, index_bound: u32) -> BTreeSet<PodId> {
        let ids = std::mem::take(&mut self.ids);
        *self = Self::new(index_bound);
        ids
    }

    pub(super) fn ids(&self) -> &BTreeSet<PodId> {
        &self.ids
    }

    pub(super) fn len(&self) -> u32 {
        self.ids.len() as u32
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub(super) fn ready(&self) -> u32 {
        self.ready
    }

    pub(super) fn restarts(&self) -> u64 {
        self.restarts
    }

    pub(super) fn indexes(&self) -> &IndexBits {
        &self.indexes
    }

    /// Checks the totals against the pods themselves (debug builds, after every sync).
    #[cfg(debug_assertions)]
    pub(super) fn assert_consistent(&self, pods: &[Pod]) {
        let idle = || self.ids.iter().map(|id| &pods[id.0 as usize]);
        debug_assert_eq!(self.ready, idle().map(|p| u32::from(p.ready)).sum::<u32>(), "idle ready");
        debug_assert_eq!(self.restarts, idle().map(|p| u64::from(p.restart_count)).sum::<u64>());
        let mut indexes = IndexBits::with_bound(self.indexes.bound());
        for p in idle() {
            if let Some(ix) = p.index {
                debug_assert!(indexes.insert(ix), "two idle pods hold index {ix}");
            }
        }
        debug_assert!(indexes == self.indexes, "idle indexes");
    }
}
