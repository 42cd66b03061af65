//! How long the simulator takes for a 100,000-index Job (issue 17 §3: under 1 s).
//!
//! ```text
//! cargo bench --bench simulate
//! ```

use _kjob::controller::simulate::{simulate, Limits, Outcome};
use _kjob::controller::{
    BackoffConfig, CompletionMode, ContainerSpec, EffectiveSpec, PodReplacementPolicy, RestartPolicy,
};
use std::time::{Duration, Instant};

fn spec(n: u32, per_index: Option<u32>) -> EffectiveSpec {
    EffectiveSpec {
        name: "bench".into(),
        namespace: "default".into(),
        uid: "uid".into(),
        labels: vec![],
        annotations: vec![],
        parallelism: n,
        completions: Some(n),
        completion_mode: CompletionMode::Indexed,
        backoff_limit: if per_index.is_some() { i32::MAX as u32 } else { 6 },
        restart_policy: RestartPolicy::Never,
        termination_grace_period: Duration::from_secs(30),
        pod_replacement_policy: PodReplacementPolicy::TerminatingOrFailed,
        suspend: false,
        backoff: BackoffConfig::default(),
        container: ContainerSpec {
            name: "c".into(),
            command: vec!["true".into()],
            args: vec![],
            env: vec![],
            working_dir: None,
            config_error: None,
        },
        container_layout: None,
        active_deadline: None,
        pod_active_deadline: None,
        ttl_after_finished: None,
        backoff_limit_per_index: per_index,
        max_failed_indexes: None,
        pod_failure_policy: None,
        success_policy: None,
        managed_by: None,
    }
}

fn main() {
    let n = 100_000;
    for (what, per_index) in
        [("all succeed", None), ("every 10th index fails once (backoffLimitPerIndex 2)", Some(2))]
    {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            let sim = simulate(
                spec(n, per_index),
                |ix, attempt| {
                    let fails = ix.is_some_and(|i| i % 10 == 0) && attempt == 0;
                    Outcome { exit_code: i32::from(fails), ..Outcome::default() }
                },
                Limits::default(),
            );
            best = best.min(started.elapsed());
            assert!(sim.controller.status().succeeded >= n - n / 10);
        }
        println!("{n} indexes, {what}: {:.3} s (best of 3)", best.as_secs_f64());
    }
}
