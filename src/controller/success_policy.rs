//! `successPolicy` evaluation (`success_policy.go`, docs/semantics.md §7): rules in order, the
//! first one met declares the Job successful.

use crate::status::IndexSet;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuccessRule {
    pub succeeded_indexes: Option<String>,
    pub succeeded_count: Option<u32>,
}

pub const REASON_SUCCESS_POLICY: &str = "SuccessPolicy";

/// `matchSuccessPolicy`: the message `Matched rules at index <i>` of the first rule met.
pub fn match_success_policy(rules: &[SuccessRule], completions: u32, succeeded: &IndexSet) -> Option<String> {
    if succeeded.is_empty() {
        return None;
    }
    for (i, rule) in rules.iter().enumerate() {
        let met = match (&rule.succeeded_indexes, rule.succeeded_count) {
            (Some(indexes), count) => {
                let required = IndexSet::parse_lenient(indexes, completions);
                if required.is_empty() {
                    continue;
                }
                let contains = required.count_common(succeeded);
                contains == required.total() || count.is_some_and(|c| contains >= u64::from(c))
            }
            (None, Some(count)) => succeeded.total() >= u64::from(count),
            (None, None) => false,
        };
        if met {
            return Some(format!("Matched rules at index {i}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(indexes: Option<&str>, count: Option<u32>) -> SuccessRule {
        SuccessRule { succeeded_indexes: indexes.map(String::from), succeeded_count: count }
    }

    #[test]
    fn success_policy_rules_table() {
        // (case, rules, completions, succeeded indexes, want)
        type Case = (&'static str, Vec<SuccessRule>, u32, &'static [u32], Option<&'static str>);
        let cases: Vec<Case> = vec![
            ("no succeeded index never matches", vec![rule(None, Some(0))], 5, &[], None),
            (
                "all listed indexes succeeded",
                vec![rule(Some("0-2"), None)],
                5,
                &[0, 1, 2],
                Some("Matched rules at index 0"),
            ),
            ("a listed index missing", vec![rule(Some("0-2"), None)], 5, &[0, 2, 3], None),
            (
                "types.go example: 1-4 with count 3, completed 1,3,5 counts only 1 and 3",
                vec![rule(Some("1-4"), Some(3))],
                6,
                &[1, 3, 5],
                None,
            ),
            (
                "count within the listed indexes",
                vec![rule(Some("1-4"), Some(2))],
                6,
                &[1, 3, 5],
                Some("Matched rules at index 0"),
            ),
            ("count alone", vec![rule(None, Some(2))], 5, &[3, 4], Some("Matched rules at index 0")),
            (
                "rules in order: the second matches",
                vec![rule(Some("4"), None), rule(None, Some(1))],
                5,
                &[0],
                Some("Matched rules at index 1"),
            ),
            ("unparsable indexes never match", vec![rule(Some("x"), None)], 5, &[0], None),
            (
                "indexes beyond completions are dropped",
                vec![rule(Some("3-9"), None)],
                5,
                &[3, 4],
                Some("Matched rules at index 0"),
            ),
        ];
        for (name, rules, completions, succeeded, want) in cases {
            let set = IndexSet::from_indexes(succeeded.iter().copied());
            assert_eq!(match_success_policy(&rules, completions, &set).as_deref(), want, "{name}");
        }
    }
}
