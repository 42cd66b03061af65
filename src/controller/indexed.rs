//! Indexed-mode helpers (`indexed_job_utils.go`, reference §4.5).

use crate::status::IndexSet;
use std::collections::HashSet;

/// `firstPendingIndexes`: the `count` lowest indexes in `[0, completions)` that have not
/// succeeded, are not failed, and have no pod holding them (`busy`: active pods, plus
/// terminating pods when they are not replaced early).
pub fn first_pending_indexes(
    count: usize,
    completions: u32,
    succeeded: &IndexSet,
    failed: Option<&IndexSet>,
    busy: &HashSet<u32>,
) -> Vec<u32> {
    let mut out = Vec::with_capacity(count.min(completions as usize));
    let mut ix = 0u32;
    while out.len() < count && ix < completions {
        let taken = succeeded.contains(ix) || failed.is_some_and(|f| f.contains(ix)) || busy.contains(&ix);
        if !taken {
            out.push(ix);
        }
        ix += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_pending_indexes_j40_to_j45() {
        let none = IndexSet::new();
        let busy = |v: &[u32]| v.iter().copied().collect::<HashSet<u32>>();
        // J40 cnt greater than completions
        assert_eq!(first_pending_indexes(5, 3, &none, None, &busy(&[])), vec![0, 1, 2]);
        // J41 cnt less than completions
        assert_eq!(first_pending_indexes(2, 5, &none, None, &busy(&[])), vec![0, 1]);
        // J42 first pods active
        assert_eq!(first_pending_indexes(3, 10, &none, None, &busy(&[0, 1])), vec![2, 3, 4]);
        // J43 last pods active or succeeded (index 6 is out of range)
        let s = IndexSet::from_indexes([4, 5]);
        assert_eq!(first_pending_indexes(6, 6, &s, None, &busy(&[6])), vec![0, 1, 2, 3]);
        // J44 mixed (pods without a valid index hold nothing)
        let s = IndexSet::from_indexes([2, 3, 4, 9]);
        assert_eq!(first_pending_indexes(5, 20, &s, None, &busy(&[3, 5, 8])), vec![0, 1, 6, 7, 10]);
        // J45 with failed indexes
        let s = IndexSet::from_indexes([1, 5, 9]);
        let f = IndexSet::from_indexes([2, 6, 7]);
        assert_eq!(first_pending_indexes(5, 20, &s, Some(&f), &busy(&[3, 9])), vec![0, 4, 8, 10, 11]);
    }
}
