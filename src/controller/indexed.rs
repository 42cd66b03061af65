//! Indexed-mode helpers (`indexed_job_utils.go`, docs/semantics.md §4.5).

use crate::status::IndexSet;

/// A set of indexes below a bound, one bit each: what a sync needs for "which indexes have a
/// pod" at tens of thousands of pods without hashing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexBits {
    words: Vec<u64>,
}

impl IndexBits {
    pub fn with_bound(bound: u32) -> Self {
        Self { words: vec![0; (bound as usize).div_ceil(64)] }
    }

    /// Adds `ix`; returns false when it was already there. Indexes past the bound are ignored.
    pub fn insert(&mut self, ix: u32) -> bool {
        let (word, bit) = ((ix / 64) as usize, ix % 64);
        let Some(w) = self.words.get_mut(word) else { return true };
        let fresh = *w & (1 << bit) == 0;
        *w |= 1 << bit;
        fresh
    }

    pub fn contains(&self, ix: u32) -> bool {
        self.words.get((ix / 64) as usize).is_some_and(|w| w & (1 << (ix % 64)) != 0)
    }

    pub fn remove(&mut self, ix: u32) {
        if let Some(w) = self.words.get_mut((ix / 64) as usize) {
            *w &= !(1 << (ix % 64));
        }
    }

    /// The lowest index at or after `from` that is not in the set (every index past the
    /// stored words counts as absent): a run of set bits is skipped a word at a time.
    pub fn next_absent(&self, from: u32) -> u32 {
        let mut word = (from / 64) as usize;
        // Bits below `from` in its word count as set, so the search starts at `from`.
        let mut bits = match self.words.get(word) {
            Some(w) => w | ((1u64 << (from % 64)) - 1),
            None => return from,
        };
        loop {
            if bits != u64::MAX {
                return (word as u32) * 64 + bits.trailing_ones();
            }
            word += 1;
            match self.words.get(word) {
                Some(w) => bits = *w,
                None => return (word as u32) * 64,
            }
        }
    }

    /// Adds every index of `other` that fits this set's words.
    pub fn union_with(&mut self, other: &IndexBits) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    /// The words' capacity in indexes (the bound rounded up to a multiple of 64).
    #[cfg(debug_assertions)]
    pub fn bound(&self) -> u32 {
        (self.words.len() * 64) as u32
    }
}

/// `firstPendingIndexes`: the `count` lowest indexes in `[0, completions)` that have not
/// succeeded, are not failed, and have no pod holding them (`busy`: active pods, plus
/// terminating pods when they are not replaced early). Runs of succeeded indexes are skipped
/// whole, so a nearly finished large Job costs little.
pub fn first_pending_indexes(
    count: usize,
    completions: u32,
    succeeded: &IndexSet,
    failed: Option<&IndexSet>,
    busy: &IndexBits,
) -> Vec<u32> {
    let mut out = Vec::with_capacity(count.min(completions as usize));
    let mut ix = 0u32;
    while out.len() < count && ix < completions {
        let next = succeeded.next_absent(ix);
        if next != ix {
            ix = next;
            continue;
        }
        if busy.contains(ix) {
            // A large Job holds long runs of busy indexes: skip them whole.
            ix = busy.next_absent(ix);
            continue;
        }
        if !failed.is_some_and(|f| f.contains(ix)) {
            out.push(ix);
        }
        ix += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(bound: u32, v: &[u32]) -> IndexBits {
        let mut b = IndexBits::with_bound(bound);
        for ix in v {
            b.insert(*ix);
        }
        b
    }

    #[test]
    fn first_pending_indexes_j40_to_j45() {
        let none = IndexSet::new();
        // J40 cnt greater than completions
        assert_eq!(first_pending_indexes(5, 3, &none, None, &busy(3, &[])), vec![0, 1, 2]);
        // J41 cnt less than completions
        assert_eq!(first_pending_indexes(2, 5, &none, None, &busy(5, &[])), vec![0, 1]);
        // J42 first pods active
        assert_eq!(first_pending_indexes(3, 10, &none, None, &busy(10, &[0, 1])), vec![2, 3, 4]);
        // J43 last pods active or succeeded (index 6 is out of range)
        let s = IndexSet::from_indexes([4, 5]);
        assert_eq!(first_pending_indexes(6, 6, &s, None, &busy(6, &[6])), vec![0, 1, 2, 3]);
        // J44 mixed (pods without a valid index hold nothing)
        let s = IndexSet::from_indexes([2, 3, 4, 9]);
        assert_eq!(first_pending_indexes(5, 20, &s, None, &busy(20, &[3, 5, 8])), vec![0, 1, 6, 7, 10]);
        // J45 with failed indexes
        let s = IndexSet::from_indexes([1, 5, 9]);
        let f = IndexSet::from_indexes([2, 6, 7]);
        assert_eq!(first_pending_indexes(5, 20, &s, Some(&f), &busy(20, &[3, 9])), vec![0, 4, 8, 10, 11]);
    }

    #[test]
    fn index_bits_next_absent_skips_runs_across_words() {
        let mut b = IndexBits::with_bound(200);
        for ix in 3..150 {
            b.insert(ix);
        }
        assert_eq!(b.next_absent(0), 0);
        assert_eq!(b.next_absent(3), 150);
        assert_eq!(b.next_absent(64), 150);
        assert_eq!(b.next_absent(151), 151);
        b.remove(100);
        assert_eq!(b.next_absent(3), 100);
        assert!(!b.contains(100) && b.contains(101));
        // Past the bound nothing is stored: every index there counts as absent.
        let mut full = IndexBits::with_bound(64);
        for ix in 0..64 {
            full.insert(ix);
        }
        assert_eq!(full.next_absent(0), 64);
        assert_eq!(full.next_absent(500), 500);
    }

    #[test]
    fn index_bits_report_duplicates_and_ignore_out_of_range() {
        let mut b = IndexBits::with_bound(100);
        assert!(b.insert(63) && b.insert(64) && !b.insert(64));
        assert!(b.contains(63) && b.contains(64) && !b.contains(65));
        assert!(b.insert(1000) && !b.contains(1000));
    }
}
