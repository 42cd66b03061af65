//! A set of completion indexes stored as ordered, disjoint, non-adjacent intervals.
//!
//! This is Kubernetes' `orderedIntervals` (`pkg/controller/job/indexed_job_utils.go`): the
//! representation behind `status.completedIndexes` and `status.failedIndexes`. Its string form
//! is part of the API, so `Display` and [`IndexSet::parse_lenient`] follow the upstream
//! algorithm exactly (a run of two is written `a,b`, three or more `a-b`).

use std::fmt;

/// An inclusive interval `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub first: u32,
    pub last: u32,
}

/// Ordered, disjoint intervals; adjacent intervals are always coalesced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexSet {
    intervals: Vec<Interval>,
}

impl IndexSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from any indexes, in any order, duplicates allowed.
    pub fn from_indexes(indexes: impl IntoIterator<Item = u32>) -> Self {
        let mut set = Self::new();
        for ix in indexes {
            set.insert(ix);
        }
        set
    }

    pub fn intervals(&self) -> &[Interval] {
        &self.intervals
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Number of indexes in the set (`total()` upstream).
    pub fn total(&self) -> u64 {
        self.intervals.iter().map(|iv| u64::from(iv.last - iv.first) + 1).sum()
    }

    /// Membership by binary search for the first interval ending at or after `ix` (`has()`).
    pub fn contains(&self, ix: u32) -> bool {
        let pos = self.intervals.partition_point(|iv| iv.last < ix);
        pos < self.intervals.len() && self.intervals[pos].first <= ix
    }

    /// Adds one index in O(log n) search plus at most one removal when it bridges two intervals.
    /// Returns whether the index was new.
    pub fn insert(&mut self, ix: u32) -> bool {
        let pos = self.intervals.partition_point(|iv| iv.last < ix);
        if pos < self.intervals.len() && self.intervals[pos].first <= ix {
            return false;
        }
        let joins_left = pos > 0 && self.intervals[pos - 1].last.checked_add(1) == Some(ix);
        let joins_right = pos < self.intervals.len() && ix.checked_add(1) == Some(self.intervals[pos].first);
        match (joins_left, joins_right) {
            (true, true) => {
                self.intervals[pos - 1].last = self.intervals[pos].last;
                self.intervals.remove(pos);
            }
            (true, false) => self.intervals[pos - 1].last = ix,
            (false, true) => self.intervals[pos].first = ix,
            (false, false) => self.intervals.insert(pos, Interval { first: ix, last: ix }),
        }
        true
    }

    /// The first index at or after `from` that is not in the set.
    pub fn next_absent(&self, from: u32) -> u32 {
        let pos = self.intervals.partition_point(|iv| iv.last < from);
        match self.intervals.get(pos) {
            Some(iv) if iv.first <= from => iv.last.saturating_add(1),
            _ => from,
        }
    }

    /// How many indexes the two sets share (an interval sweep).
    pub fn count_common(&self, other: &IndexSet) -> u64 {
        let (a, b) = (&self.intervals, &other.intervals);
        let (mut i, mut j, mut count) = (0, 0, 0u64);
        while i < a.len() && j < b.len() {
            let first = a[i].first.max(b[j].first);
            let last = a[i].last.min(b[j].last);
            if first <= last {
                count += u64::from(last - first) + 1;
            }
            if a[i].last < b[j].last {
                i += 1;
            } else {
                j += 1;
            }
        }
        count
    }

    /// Iterates every index in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.intervals.iter().flat_map(|iv| iv.first..=iv.last)
    }

    /// Drops every index `>= completions` (used when an Indexed Job is scaled down).
    pub fn truncate(&mut self, completions: u32) {
        self.intervals.retain(|iv| iv.first < completions);
        if let Some(last) = self.intervals.last_mut() {
            if last.last >= completions {
                last.last = completions - 1;
            }
        }
    }

    /// Parses a status string the way the controller does (`parseIndexesFromString`): corrupted
    /// fragments are skipped, parsing stops at the first interval starting at or beyond
    /// `completions`, an interval's end is clamped to `completions - 1`, and adjacent intervals
    /// merge. Strict parsing of user input (successPolicy) is a validation concern.
    pub fn parse_lenient(text: &str, completions: u32) -> Self {
        let mut set = Self::new();
        if text.is_empty() {
            return set;
        }
        for fragment in text.split(',') {
            let mut limits = fragment.split('-');
            let Some(Ok(first)) = limits.next().map(str::parse::<u32>) else {
                continue;
            };
            if first >= completions {
                break;
            }
            let last = match limits.next() {
                None => first,
                Some(end) => match end.parse::<u32>() {
                    Ok(end) => end.min(completions - 1),
                    Err(_) => continue,
                },
            };
            if last < first {
                continue;
            }
            match set.intervals.last_mut() {
                Some(prev) if prev.last.checked_add(1) == Some(first) => prev.last = last,
                Some(prev) if prev.last >= first => prev.last = prev.last.max(last),
                _ => set.intervals.push(Interval { first, last }),
            }
        }
        set
    }
}

impl fmt::Display for IndexSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, iv) in self.intervals.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", iv.first)?;
            if iv.last > iv.first {
                let sep = if iv.last == iv.first + 1 { ',' } else { '-' };
                write!(f, "{sep}{}", iv.last)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(first: u32, last: u32) -> Interval {
        Interval { first, last }
    }

    #[test]
    fn string_format_matches_ordered_intervals_string() {
        // §2.1: runs of two are "a,b", three or more "a-b".
        let cases: &[(&[u32], &str)] = &[
            (&[], ""),
            (&[1, 3, 4, 5, 7], "1,3-5,7"),
            (&[2, 4, 5, 7, 8, 9], "2,4,5,7-9"),
            (&[0, 1], "0,1"),
            (&[0], "0"),
            (&[9, 8, 7, 0, 2, 1], "0-2,7-9"),
        ];
        for (indexes, want) in cases {
            let set = IndexSet::from_indexes(indexes.iter().copied());
            assert_eq!(set.to_string(), *want, "indexes {indexes:?}");
        }
    }

    #[test]
    fn insert_coalesces_neighbours() {
        let mut set = IndexSet::from_indexes([2, 4]);
        assert!(set.insert(3));
        assert_eq!(set.intervals(), &[iv(2, 4)]);
        assert!(!set.insert(3));
        assert!(set.insert(u32::MAX));
        assert!(set.insert(0));
        assert_eq!(set.intervals(), &[iv(0, 0), iv(2, 4), iv(u32::MAX, u32::MAX)]);
        assert_eq!(set.total(), 5);
    }

    #[test]
    fn parse_lenient_cases_from_upstream() {
        // docs/semantics.md §2.1 examples and J6/J7/J12 (§8.J).
        let cases: &[(&str, u32, &[Interval])] = &[
            ("0-5,8-10", 8, &[iv(0, 5)]),
            ("0-5,8-10", 10, &[iv(0, 5), iv(8, 9)]),
            ("0,1-foo,bar", 4, &[iv(0, 0)]),
            ("3,4,6", 10, &[iv(3, 4), iv(6, 6)]),
            ("invalid-form", 10, &[]),
            ("-1", 10, &[]),
            ("", 10, &[]),
        ];
        for (text, completions, want) in cases {
            let set = IndexSet::parse_lenient(text, *completions);
            assert_eq!(set.intervals(), *want, "{text:?} with completions {completions}");
        }
    }

    #[test]
    fn intervals_have_index_j34_to_j39() {
        let two = IndexSet::from_indexes((2..=4).chain(6..=8));
        assert!(!IndexSet::new().contains(4)); // J34
        assert!(!IndexSet::from_indexes(2..=7).contains(1)); // J35
        assert!(!two.contains(9)); // J36
        assert!(!two.contains(5)); // J37
        assert!(two.contains(2)); // J38
        assert!(two.contains(8)); // J39
    }

    #[test]
    fn count_common_sweeps_both_sets() {
        let a = IndexSet::from_indexes((1..=4).chain(8..=10));
        let b = IndexSet::from_indexes([0, 1, 3, 5, 9, 10, 11]);
        assert_eq!(a.count_common(&b), 4);
        assert_eq!(b.count_common(&a), 4);
        assert_eq!(a.count_common(&IndexSet::new()), 0);
    }

    /// A randomized property test: 20,000 strings built from the interval alphabet (and some
    /// noise) never panic the parsers, and what they accept is well formed.
    #[test]
    fn random_interval_strings_parse_to_well_formed_sets() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: &[&str] =
            &["0", "1", "7", "42", "99", "4294967295", "99999999999", "-", ",", ",", "x", " ", "+3"];
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let text: String =
                (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let completions = (next() % 120) as u32 + 1;
            let set = IndexSet::parse_lenient(&text, completions);
            for w in set.intervals().windows(2) {
                assert!(w[0].last.saturating_add(1) < w[1].first, "{text:?}: not disjoint/merged: {set:?}");
            }
            assert!(
                set.intervals().iter().all(|iv| iv.first <= iv.last && iv.last < completions),
                "{text:?}"
            );
            // What the strict parser accepts, the lenient one reads the same way.
            if let Ok(total) = crate::spec::validate_indexes_format(&text, completions as i32) {
                assert_eq!(total as u64, set.total(), "{text:?}");
            }
            // Formatting and reparsing is the identity.
            assert_eq!(IndexSet::parse_lenient(&set.to_string(), completions), set, "{text:?}");
        }
    }

    #[test]
    fn truncate_drops_out_of_range_indexes() {
        let mut set = IndexSet::from_indexes([0, 1, 2, 5, 6, 7, 9]);
        set.truncate(7);
        assert_eq!(set.to_string(), "0-2,5,6");
    }
}
