//! The environment a Job's processes inherit, copied once when the Job starts.
//!
//! Spawning reads no live `environ`: Python's `os.putenv` (every `os.environ[...] = ...`)
//! calls `setenv` without the lock that Rust's `std::env` takes, and may free or move the
//! strings a spawning thread is reading, so an `execve` could receive dangling pointers. A
//! snapshot taken while the GIL is held (`runtime::Job::start` is called from the bindings
//! with it) cannot race a Python thread's `putenv`; every pod of the Job, and every worker it
//! starts, inherits that snapshot, under the Job's own variables.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// `KEY=VALUE` entries, shared by every spawn of a Job (cloning is a reference count).
#[derive(Clone, Debug, Default)]
pub struct EnvSnapshot {
    entries: Arc<[CString]>,
}

impl EnvSnapshot {
    /// Copies this process's environment. The caller must make sure no other thread changes
    /// it meanwhile without Rust's lock: hold the GIL, so that no Python thread can.
    pub fn capture() -> Self {
        let entries = std::env::vars_os()
            .filter_map(|(key, value)| {
                let mut entry = key.as_bytes().to_vec();
                entry.push(b'=');
                entry.extend_from_slice(value.as_bytes());
                // The C environment cannot hold a NUL byte inside an entry; skip rather than fail.
                CString::new(entry).ok()
            })
            .collect();
        Self { entries }
    }

    /// A snapshot of exactly these variables (tests, and callers that want a clean slate).
    pub fn from_vars<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let entries = vars.into_iter().filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok()).collect();
        Self { entries }
    }

    /// The `KEY=VALUE` entries, in the order the environment held them.
    pub fn entries(&self) -> &[CString] {
        &self.entries
    }

    /// The value of `key`, if the snapshot has it.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.iter().find_map(|entry| value_of(entry, key.as_bytes()))
    }

    /// The value of `key` as text, if the snapshot has it and it is UTF-8 (as `std::env::var`).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// The key of a `KEY=VALUE` entry (all of it when it has no `=`).
pub(super) fn key_of(entry: &CStr) -> &[u8] {
    let bytes = entry.to_bytes();
    bytes.split(|&b| b == b'=').next().unwrap_or(bytes)
}

fn value_of<'a>(entry: &'a CStr, key: &[u8]) -> Option<&'a [u8]> {
    entry.to_bytes().strip_prefix(key)?.strip_prefix(b"=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_the_values_it_was_made_with() {
        let snapshot = EnvSnapshot::from_vars([("A", "1"), ("AB", "x=y"), ("EMPTY", "")]);
        assert_eq!(snapshot.get("A"), Some(&b"1"[..]));
        assert_eq!(snapshot.get("AB"), Some(&b"x=y"[..]));
        assert_eq!(snapshot.get_str("EMPTY"), Some(""));
        assert_eq!(snapshot.get("B"), None);
        assert_eq!(snapshot.entries().len(), 3);
        assert_eq!(key_of(&snapshot.entries()[1]), b"AB");
    }

    #[test]
    fn capture_copies_the_process_environment() {
        let snapshot = EnvSnapshot::capture();
        let path = std::env::var_os("PATH").map(|p| p.as_bytes().to_vec());
        assert_eq!(snapshot.get("PATH").map(<[u8]>::to_vec), path);
        assert_eq!(snapshot.entries().len(), std::env::vars_os().count());
    }
}
