//! The pods of a callable Job waiting for a worker, in order, with removal in O(1).
//!
//! The controller deletes surplus pods newest first, the far end of the queue: with a search
//! per removal, scaling a Job of N queued pods down would cost O(N²). Here a removed pod only
//! leaves its membership entry; its place in the order stays behind as a tombstone that
//! taking from the front skips. Each place carries a sequence number, so a pod queued again
//! after a removal (a worker's pod sent back) is taken from its new place, not its stale one.

use crate::controller::PodId;
use std::collections::{HashMap, VecDeque};

#[derive(Default)]
pub(super) struct PodQueue {
    /// Places in the queue, front first: a pod and the sequence number of its entry.
    order: VecDeque<(PodId, u64)>,
    /// The pods really queued, with the sequence number of their live place in `order`.
    queued: HashMap<PodId, u64>,
    next_seq: u64,
}

impl PodQueue {
    /// Queues `pod` last (a pod already queued stays where it is).
    pub(super) fn push_back(&mut self, pod: PodId) {
        if let Some(seq) = self.enter(pod) {
            self.order.push_back((pod, seq));
        }
    }

    /// Queues `pod` first (a pod already queued stays where it is).
    pub(super) fn push_front(&mut self, pod: PodId) {
        if let Some(seq) = self.enter(pod) {
            self.order.push_front((pod, seq));
        }
    }

    /// Takes the first pod.
    pub(super) fn pop_front(&mut self) -> Option<PodId> {
        while let Some((pod, seq)) = self.order.pop_front() {
            if self.queued.get(&pod) == Some(&seq) {
                self.queued.remove(&pod);
                return Some(pod);
            }
        }
        None
    }

    /// Takes `pod` out of the queue; returns whether it was there.
    pub(super) fn remove(&mut self, pod: PodId) -> bool {
        if self.queued.remove(&pod).is_none() {
            return false;
        }
        // Tombstones may not outnumber the live places (memory stays O(queued pods)); the
        // compaction is O(len) once per len/2 removals, so O(1) per removal amortised.
        if self.order.len() > 2 * self.queued.len() + 16 {
            let queued = &self.queued;
            self.order.retain(|(p, seq)| queued.get(p) == Some(seq));
        }
        true
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.order.clear();
        self.queued.clear();
    }

    /// Empties the queue, returning its pods in order.
    pub(super) fn drain(&mut self) -> Vec<PodId> {
        let queued = std::mem::take(&mut self.queued);
        self.order.drain(..).filter(|(p, seq)| queued.get(p) == Some(seq)).map(|(p, _)| p).collect()
    }

    /// Marks `pod` queued under a fresh sequence number, unless it already is.
    fn enter(&mut self, pod: PodId) -> Option<u64> {
        if self.queued.contains_key(&pod) {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queued.insert(pod, seq);
        Some(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_of(pods: std::ops::Range<u64>) -> PodQueue {
        let mut q = PodQueue::default();
        for n in pods {
            q.push_back(PodId(n));
        }
        q
    }

    #[test]
    fn removed_pods_are_skipped_and_the_order_is_kept() {
        let mut q = queue_of(0..6);
        assert!(q.remove(PodId(5)));
        assert!(q.remove(PodId(1)));
        assert!(!q.remove(PodId(1)), "removed twice");
        assert!(!q.remove(PodId(42)), "never queued");
        q.push_front(PodId(9));
        assert_eq!(q.queued.len(), 5);
        assert_eq!(q.pop_front(), Some(PodId(9)));
        assert_eq!(q.pop_front(), Some(PodId(0)));
        assert_eq!(q.pop_front(), Some(PodId(2)));
        assert_eq!(q.drain(), vec![PodId(3), PodId(4)]);
        assert!(q.is_empty());
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn a_pod_queued_again_after_its_removal_comes_from_its_new_place() {
        let mut q = queue_of(0..3);
        assert!(q.remove(PodId(0)));
        q.push_back(PodId(0));
        assert_eq!(q.drain(), vec![PodId(1), PodId(2), PodId(0)]);
        let mut q = queue_of(0..3);
        assert!(q.remove(PodId(2)));
        q.push_front(PodId(2));
        let popped: Vec<_> = std::iter::from_fn(|| q.pop_front()).collect();
        assert_eq!(popped, vec![PodId(2), PodId(0), PodId(1)]);
    }

    #[test]
    fn a_pod_already_queued_is_not_queued_twice() {
        let mut q = queue_of(0..2);
        q.push_front(PodId(1));
        q.push_back(PodId(0));
        assert_eq!(q.queued.len(), 2);
        assert_eq!(q.drain(), vec![PodId(0), PodId(1)]);
    }

    #[test]
    fn removing_newest_first_leaves_few_tombstones_and_the_rest_in_order() {
        let mut q = queue_of(0..10_000);
        for n in (100..10_000).rev() {
            assert!(q.remove(PodId(n)));
        }
        assert_eq!(q.queued.len(), 100);
        assert!(q.order.len() <= 2 * 100 + 16, "{} places kept for 100 pods", q.order.len());
        assert_eq!(q.drain(), (0..100).map(PodId).collect::<Vec<_>>());
    }
}
