//! Kubernetes events the controller records about a Job (docs/semantics.md §3.1):
//! `SuccessfulCreate`, `SuccessfulDelete`, `Completed`, the failure warnings, `Suspended`,
//! `Resumed`, `TooManySucceededPods`. Only the newest are kept, as the API server expires old
//! events.

use crate::status::Time;
use std::collections::VecDeque;

/// How many events a Job keeps.
const MAX_EVENTS: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    pub type_: EventType,
    pub reason: String,
    pub message: String,
    pub time: Time,
}

#[derive(Clone, Debug, Default)]
pub struct EventLog {
    events: VecDeque<JobEvent>,
    /// Events ever recorded, including those expired: the sequence number of the next one.
    recorded: u64,
}

impl EventLog {
    pub fn record(&mut self, time: Time, type_: EventType, reason: &str, message: String) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(JobEvent { type_, reason: reason.to_string(), message, time });
        self.recorded += 1;
    }

    /// The sequence number the next event will have (every event has one, from 0).
    pub fn next_sequence(&self) -> u64 {
        self.recorded
    }

    /// The kept events numbered `seq` and later (a watcher's "what is new since").
    pub fn since(&self, seq: u64) -> impl Iterator<Item = &JobEvent> {
        let first_kept = self.recorded - self.events.len() as u64;
        let skip = seq.saturating_sub(first_kept).min(self.events.len() as u64) as usize;
        self.events.iter().skip(skip)
    }

    pub fn iter(&self) -> impl Iterator<Item = &JobEvent> {
        self.events.iter()
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_counts_expired_events() {
        let mut log = EventLog::default();
        for i in 0..MAX_EVENTS + 5 {
            log.record(Time::ZERO, EventType::Normal, "R", i.to_string());
        }
        assert_eq!(log.next_sequence(), MAX_EVENTS as u64 + 5);
        let newest: Vec<&str> = log.since(MAX_EVENTS as u64 + 3).map(|e| e.message.as_str()).collect();
        assert_eq!(newest, [(MAX_EVENTS + 3).to_string(), (MAX_EVENTS + 4).to_string()]);
        assert_eq!(log.since(0).count(), MAX_EVENTS, "expired events are gone, the rest all come");
        assert_eq!(log.since(u64::MAX).count(), 0);
    }
}
