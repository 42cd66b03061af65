//! Kubernetes events the controller records about a Job (reference §3.1): `SuccessfulCreate`,
//! `SuccessfulDelete`, `Completed`, the failure warnings, `Suspended`, `Resumed`,
//! `TooManySucceededPods`. Only the newest are kept, as the API server expires old events.

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
}

impl EventLog {
    pub fn record(&mut self, time: Time, type_: EventType, reason: &str, message: String) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(JobEvent { type_, reason: reason.to_string(), message, time });
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
