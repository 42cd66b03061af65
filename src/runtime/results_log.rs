//! The results log of a stored callable Job: every succeeded pod's pickled return value,
//! appended to a file beside the Job's logs **before** the pod counts as succeeded anywhere
//! another process could see (the published status, the store's snapshots, `pods()`).
//! A crash thus never leaves an index counted complete without its result: resuming reads
//! the log back (`python/kjob/_store.py`) and counts what it holds.
//!
//! A record is `b"KR"`, a flags byte (bit 0: the pod has an index), the index (u32), the pod
//! name's length (u16) and bytes, the value's length (u32) and bytes; integers little-endian.
//! The results of one fold of the owner are written with one `write` call; a record cut short
//! by a crash mid-write is ignored (and cut off) by the reader.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub(super) struct ResultsLog {
    path: PathBuf,
    file: Option<File>,
    pending: Vec<u8>,
}

impl ResultsLog {
    pub(super) fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { path: path.to_path_buf(), file: Some(file), pending: Vec::new() })
    }

    /// Adds one record to the next write.
    pub(super) fn push(&mut self, index: Option<u32>, pod_name: &str, value: &[u8]) {
        if self.file.is_none() {
            return;
        }
        let name = &pod_name.as_bytes()[..pod_name.len().min(u16::MAX as usize)];
        self.pending.extend_from_slice(b"KR");
        self.pending.push(u8::from(index.is_some()));
        self.pending.extend_from_slice(&index.unwrap_or(0).to_le_bytes());
        self.pending.extend_from_slice(&(name.len() as u16).to_le_bytes());
        self.pending.extend_from_slice(name);
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.pending.extend_from_slice(&len.to_le_bytes());
        self.pending.extend_from_slice(&value[..len as usize]);
    }

    /// Writes what was pushed. After a failure (a full disk) the log is given up, once, with
    /// a message for the Job's events: the Job goes on, its results kept in memory only.
    pub(super) fn write(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            self.pending.clear();
            return Ok(());
        };
        let written = file.write_all(&self.pending);
        self.pending.clear();
        written.map_err(|e| {
            self.file = None;
            format!(
                "cannot write the results log {}: {e}; results are kept in this process only and a \
                 resumed Job reruns the pods whose results are missing",
                self.path.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_written_in_one_piece_in_the_documented_layout() {
        let path = std::env::temp_dir().join(format!("kjob-results-{}.bin", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut log = ResultsLog::open(&path).unwrap();
        log.push(Some(7), "job-7-abcde", b"xyz");
        log.push(None, "p", b"");
        log.write().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mut expected = b"KR\x01\x07\x00\x00\x00\x0b\x00job-7-abcde\x03\x00\x00\x00xyz".to_vec();
        expected.extend_from_slice(b"KR\x00\x00\x00\x00\x00\x01\x00p\x00\x00\x00\x00");
        assert_eq!(bytes, expected);
        let _ = std::fs::remove_file(&path);
    }
}
