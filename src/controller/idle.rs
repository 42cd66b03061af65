//! Idle pods: active pods that a sync has nothing to do with but count. A Job at
//! `parallelism=100000` holds that many of them while only a few change between two syncs;
//! keeping them out of the controller's per-sync passes makes a sync cost what changed, not
//! what runs. Only their totals (how many, how many ready, their restarts, the indexes they
//! hold) take part in a sync.
//!
//! A pod is idle only while nothing about it can change without news: any event about it, or
//! the controller deciding to delete it, wakes it first (see `Controller::wake`). The one
//! change that comes without news, a pod outliving its `activeDeadlineSeconds`, is kept in
//! deadline order, so a sync wakes exactly the pods whose deadline has come.

use super::defaults::EffectiveSpec;
use super::indexed::IndexBits;
use super::job_controller::Controller;
use super::pod::{Pod, PodId};
use crate::status::Time;
use std::collections::BTreeSet;
use std::time::Duration;

pub(super) struct IdlePods {
    ids: BTreeSet<PodId>,
    ready: u32,
    restarts: u64,
    /// The indexes the idle pods hold, each by one pod only (`[0, completions)`).
    indexes: IndexBits,
    /// The pod template's `activeDeadlineSeconds`.
    deadline: Option<Duration>,
    /// Started idle pods by the time they outlive `deadline`.
    due: BTreeSet<(Time, PodId)>,
}

impl IdlePods {
    /// `index_bound`: the Job's `completions` for an Indexed Job, 0 otherwise; `deadline`:
    /// the pod template's `activeDeadlineSeconds`.
    pub(super) fn new(index_bound: u32, deadline: Option<Duration>) -> Self {
        Self {
            ids: BTreeSet::new(),
            ready: 0,
            restarts: 0,
            indexes: IndexBits::with_bound(index_bound),
            deadline,
            due: BTreeSet::new(),
        }
    }

    /// When `pod` outlives its deadline, if it has one and has started.
    fn due_time(&self, pod: &Pod) -> Option<Time> {
        Some(pod.started_at?.saturating_add(self.deadline?))
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
        if let Some(due) = self.due_time(pod) {
            self.due.insert((due, pod.id));
        }
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
        if let Some(due) = self.due_time(pod) {
            self.due.remove(&(due, pod.id));
        }
        self.ready -= u32::from(pod.ready);
        self.restarts -= u64::from(pod.restart_count);
        true
    }

    /// Empties the set (with a new index bound) and returns the pods that were idle.
    pub(super) fn take_all(&mut self, index_bound: u32) -> BTreeSet<PodId> {
        let ids = std::mem::take(&mut self.ids);
        *self = Self::new(index_bound, self.deadline);
        ids
    }

    /// The idle pods whose deadline has come by `now`.
    pub(super) fn due_by(&self, now: Time) -> Vec<PodId> {
        self.due.iter().take_while(|(due, _)| *due <= now).map(|(_, id)| *id).collect()
    }

    /// When the first idle pod outlives its deadline.
    pub(super) fn next_due(&self) -> Option<Time> {
        self.due.first().map(|(due, _)| *due)
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
        let due: BTreeSet<(Time, PodId)> =
            idle().filter_map(|p| self.due_time(p).map(|due| (due, p.id))).collect();
        debug_assert!(due == self.due, "idle deadlines");
    }
}

impl Controller {
    /// Whether a sync may leave `pod` out of its passes and count it in `idle`'s totals:
    /// it runs (or waits for its process) uncounted, with a valid index, not being killed
    /// for its deadline, and only an event about it (or its deadline) could change that. A
    /// deleted Job and a finished one keep every pod in sight.
    pub(super) fn can_idle(&self, pod: &Pod) -> bool {
        #[cfg(test)]
        if self.never_idle {
            return false;
        }
        !self.deleting
            && !self.status.is_finished()
            && !pod.counted
            && pod.is_active()
            && pod.has_process()
            && !pod.deadline_exceeded
            && self.has_valid_index(pod)
            // Its containers start, stop and restart at syncs (`pod_containers.rs`).
            && pod.containers.is_none()
    }

    /// Moves the pods with nothing left for a sync to look at into `idle` (after a sync,
    /// over the few pods that changed since the last one).
    pub(super) fn set_idle_pods_aside(&mut self) {
        let quiet: Vec<PodId> =
            self.unsettled.iter().copied().filter(|id| self.can_idle(&self.pods[id.0 as usize])).collect();
        for id in quiet {
            if self.idle.insert(&self.pods[id.0 as usize]) {
                self.unsettled.remove(&id);
            }
        }
    }

    /// Brings an idle pod back into the syncs' sight, before anything about it changes.
    pub(super) fn wake(&mut self, id: PodId) {
        if self.pods.get(id.0 as usize).is_some_and(|p| self.idle.remove(p)) {
            self.unsettled.insert(id);
        }
    }

    /// Wakes every idle pod: the spec or the Job's state changed under all of them.
    pub(super) fn wake_all(&mut self) {
        let ids = self.idle.take_all(idle_index_bound(&self.spec));
        self.unsettled.extend(ids);
    }
}

/// The indexes idle pods may hold: `[0, completions)` of an Indexed Job, none otherwise.
pub(super) fn idle_index_bound(spec: &EffectiveSpec) -> u32 {
    if spec.is_indexed() {
        spec.completions.unwrap_or(0)
    } else {
        0
    }
}
