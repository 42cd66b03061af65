//! Delays after failures: the Job controller's pod re-creation backoff (`backoff_utils.go`,
//! docs/semantics.md §5.3) and the kubelet's in-place restart delay for `restartPolicy:
//! OnFailure` (§5.1).

use super::defaults::BackoffConfig;
use crate::status::Time;
use std::time::Duration;

/// `backoffRecord`: consecutive failures since the last success and when the last one ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    pub failures_after_last_success: u32,
    pub last_failure_time: Option<Time>,
}

impl BackoffRecord {
    /// `newBackoffRecord`: folds in the pods that finished since the last sync, given as their
    /// finish times. New successes reset the count; only failures strictly after the latest new
    /// success count then.
    pub fn update(&mut self, succeeded_finish_times: &[Time], failed_finish_times: &[Time]) {
        if succeeded_finish_times.is_empty() && failed_finish_times.is_empty() {
            return;
        }
        let mut failed: Vec<Time> = failed_finish_times.to_vec();
        failed.sort();
        match succeeded_finish_times.iter().max() {
            None => {
                self.failures_after_last_success += failed.len() as u32;
                self.last_failure_time = failed.last().copied();
            }
            Some(last_success) => {
                let after: Vec<Time> = failed.into_iter().filter(|t| t > last_success).collect();
                self.failures_after_last_success = after.len() as u32;
                self.last_failure_time = after.last().copied();
            }
        }
    }

    /// Time left before a new pod may be created (`getRemainingTime`).
    pub fn remaining(&self, config: BackoffConfig, now: Time) -> Duration {
        remaining_for_failures(config, self.failures_after_last_success, self.last_failure_time, now)
    }
}

/// `getRemainingTimeForFailuresCount`: `min(initial * 2^(n-1), max)` from the last failure.
pub fn remaining_for_failures(
    config: BackoffConfig,
    failures: u32,
    last_failure_time: Option<Time>,
    now: Time,
) -> Duration {
    let Some(last) = last_failure_time else {
        return Duration::ZERO;
    };
    if failures == 0 {
        return Duration::ZERO;
    }
    let delay = exponential_delay(config.initial, config.max, failures);
    let elapsed = now.saturating_sub(last);
    delay.saturating_sub(elapsed)
}

/// `initial` doubled `n - 1` times, never beyond `max`.
pub fn exponential_delay(initial: Duration, max: Duration, n: u32) -> Duration {
    let mut delay = initial;
    for _ in 1..n {
        delay = delay.saturating_mul(2);
        if delay >= max {
            return max;
        }
    }
    delay.min(max)
}

/// The kubelet's crash-loop delay before the `restart`-th in-place restart: 10 s doubling,
/// capped at 5 min. kjob scales it with the Job's backoff knobs (half the re-creation cap).
pub fn restart_delay(config: BackoffConfig, restart: u32) -> Duration {
    exponential_delay(config.initial, config.max / 2, restart)
}

/// A container that ran this long before failing restarts its crash-loop count (10 min upstream,
/// twice the restart cap here so the ratio holds when the knobs are scaled).
pub fn restart_reset_after(config: BackoffConfig) -> Duration {
    config.max
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1_000_000);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn new_backoff_record_k1_to_k8() {
        // (case, store before, succeeded finish times, failed finish times, want)
        type Case = (&'static str, BackoffRecord, Vec<Time>, Vec<Time>, (u32, Option<Time>));
        let empty = BackoffRecord::default();
        let cases: Vec<Case> = vec![
            ("K1 one new failure", empty, vec![], vec![T], (1, Some(T))),
            ("K2 two new failures", empty, vec![], vec![T, T - MS], (2, Some(T))),
            ("K3 two failures followed by success", empty, vec![T], vec![T - 2 * MS, T - MS], (0, None)),
            (
                "K4 two failures, one success and two more failures",
                empty,
                vec![T - 2 * MS],
                vec![T, T - 4 * MS, T - 3 * MS, T - MS],
                (2, Some(T)),
            ),
            (
                "K5 store having failure count 2 and one new failure",
                BackoffRecord { failures_after_last_success: 2, last_failure_time: None },
                vec![],
                vec![T],
                (3, Some(T)),
            ),
            ("K6 success and failure at same timestamp", empty, vec![T], vec![T], (0, None)),
            ("K7 no success/failure", empty, vec![], vec![], (0, None)),
            ("K8 one success", empty, vec![T], vec![], (0, None)),
        ];
        for (name, mut record, succeeded, failed, want) in cases {
            record.update(&succeeded, &failed);
            assert_eq!((record.failures_after_last_success, record.last_failure_time), want, "{name}");
        }
    }

    #[test]
    fn remaining_backoff_time_k17_to_k24() {
        // The upstream test parameters: 5 s default, 700 s max.
        let config = BackoffConfig { initial: Duration::from_secs(5), max: Duration::from_secs(700) };
        let s = Duration::from_secs;
        let cases: &[(&str, u32, Duration, Duration)] = &[
            ("K18 one failure, same time", 1, s(0), s(5)),
            ("K19 one failure, 1s later", 1, s(1), s(4)),
            ("K20 one failure, at expected backoff", 1, s(5), s(0)),
            ("K21 one failure, 1s after expected backoff", 1, s(6), s(0)),
            ("K22 three failures", 3, s(0), s(20)),
            ("K23 eight failures, not exceeding max", 8, s(0), s(640)),
            ("K24 nine failures, exceeding max", 9, s(0), s(700)),
        ];
        assert_eq!(remaining_for_failures(config, 0, None, T), Duration::ZERO, "K17 no failures");
        for (name, failures, since, want) in cases {
            assert_eq!(remaining_for_failures(config, *failures, Some(T), T + *since), *want, "{name}");
        }
    }

    #[test]
    fn production_delays_double_from_10s_to_a_10_minute_cap() {
        let config = BackoffConfig::default();
        let want = [10, 20, 40, 80, 160, 320, 600, 600];
        for (n, secs) in want.iter().enumerate() {
            let got = remaining_for_failures(config, n as u32 + 1, Some(T), T);
            assert_eq!(got, Duration::from_secs(*secs), "failures {}", n + 1);
        }
    }

    #[test]
    fn kubelet_restart_delay_caps_at_five_minutes() {
        let config = BackoffConfig::default();
        let got: Vec<u64> = (1..=7).map(|n| restart_delay(config, n).as_secs()).collect();
        assert_eq!(got, vec![10, 20, 40, 80, 160, 300, 300]);
    }
}
