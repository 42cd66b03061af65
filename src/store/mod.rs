//! The durable store of Jobs: one embedded SQLite file (issue 15).
//!
//! A thin, typed, transactional store of opaque records. The caller decides what the bytes
//! mean (a pickled manifest, JSON status, ...); this module guarantees the schema, atomicity
//! (every write is one `BEGIN IMMEDIATE` transaction, rolled back whole on failure) and clear
//! errors. It knows nothing of Python: `src/python/store.rs` wraps it.

mod error;
mod schema;
#[cfg(test)]
mod tests;

pub use error::{FailureKind, Result, StoreError};
pub use schema::SCHEMA_VERSION;

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::time::Duration;

/// One stored Job. `pods` is `None` when it was not asked for (or never written).
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub created: f64,
    pub finished: Option<f64>,
    /// A JSON object, as text.
    pub labels: String,
    pub owner: Option<String>,
    pub doc: Vec<u8>,
    pub status: Option<Vec<u8>>,
    pub pods: Option<Vec<u8>>,
    /// Bumped by every write to the Job: readers poll it, writers compare-and-set on it.
    pub version: i64,
    pub deleting: bool,
}

/// A new Job for [`Store::insert_job`].
#[derive(Clone, Copy, Debug)]
pub struct NewJob<'a> {
    pub uid: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub created: f64,
    pub labels: &'a str,
    pub doc: &'a [u8],
    pub owner: Option<&'a str>,
}

/// The changes of one [`Store::update_job`]: `None` leaves a column as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct JobUpdate<'a> {
    pub status: Option<&'a [u8]>,
    pub pods: Option<&'a [u8]>,
    pub finished: Option<f64>,
    pub doc: Option<&'a [u8]>,
    pub labels: Option<&'a str>,
    /// `(seq, body)` pairs; a `(uid, seq)` already stored is left as it is.
    pub events: &'a [(i64, &'a [u8])],
    /// Write only when the Job's version is this one.
    pub expected_version: Option<i64>,
}

/// The columns of a [`JobRecord`], in the order [`job_from_row`] reads them. `{pods}` is the
/// pods column or `NULL`, so a reader that needs no pods does not load the largest blob.
const JOB_COLUMNS: &str =
    "uid, namespace, name, created, finished, labels, owner, doc, status, {pods}, version, deleting";

fn job_select(with_pods: bool, rest: &str) -> String {
    let columns = JOB_COLUMNS.replace("{pods}", if with_pods { "pods" } else { "NULL" });
    format!("SELECT {columns} FROM jobs {rest}")
}

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        uid: row.get(0)?,
        namespace: row.get(1)?,
        name: row.get(2)?,
        created: row.get(3)?,
        finished: row.get(4)?,
        labels: row.get(5)?,
        owner: row.get(6)?,
        doc: row.get(7)?,
        status: row.get(8)?,
        pods: row.get(9)?,
        version: row.get(10)?,
        deleting: row.get(11)?,
    })
}

/// An open store: one SQLite connection. Not `Sync`: share it behind a mutex.
pub struct Store {
    path: String,
    conn: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `path`, creating the file (not its folder) when absent, and brings an
    /// older schema up to date. Waits up to `busy_timeout` for another process's lock.
    pub fn open(path: &str, busy_timeout: Duration) -> Result<Self> {
        let conn = schema::open(path, busy_timeout)?;
        // Room for every statement of this module (about twenty), so none is parsed twice.
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Self { path: path.to_owned(), conn })
    }

    /// The file's path, as given to [`Store::open`].
    pub fn path(&self) -> &str {
        &self.path
    }

    fn fail(&self, error: rusqlite::Error) -> StoreError {
        StoreError::sqlite(&self.path, &error)
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction, committed when it returns `Ok` and
    /// rolled back otherwise (also when the commit itself fails).
    fn write<T>(
        &mut self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<(T, bool)>,
    ) -> Result<T> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate);
        let tx = tx.map_err(|e| StoreError::sqlite(&self.path, &e))?;
        let (value, keep) = work(&tx).map_err(|e| StoreError::sqlite(&self.path, &e))?;
        if keep {
            tx.commit().map_err(|e| StoreError::sqlite(&self.path, &e))?;
        }
        // Dropping an uncommitted transaction rolls it back.
        Ok(value)
    }

    /// Records a new Job at version 1. `false` (and nothing written) when its namespace/name
    /// is taken.
    pub fn insert_job(&mut self, job: &NewJob<'_>) -> Result<bool> {
        self.write(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO jobs (uid, namespace, name, created, labels, doc, owner, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)
                 ON CONFLICT (namespace, name) DO NOTHING",
            )?;
            let added = insert.execute(params![
                job.uid,
                job.namespace,
                job.name,
                job.created,
                job.labels,
                job.doc,
                job.owner
            ])?;
            Ok((added == 1, added == 1))
        })
    }

    /// The Job `namespace/name`, if stored.
    pub fn get_job(&self, namespace: &str, name: &str, with_pods: bool) -> Result<Option<JobRecord>> {
        let sql = job_select(with_pods, "WHERE namespace = ?1 AND name = ?2");
        let mut select = self.conn.prepare_cached(&sql).map_err(|e| self.fail(e))?;
        select.query_row(params![namespace, name], job_from_row).optional().map_err(|e| self.fail(e))
    }

    /// The Job with this UID, if stored.
    pub fn get_job_by_uid(&self, uid: &str, with_pods: bool) -> Result<Option<JobRecord>> {
        let sql = job_select(with_pods, "WHERE uid = ?1");
        let mut select = self.conn.prepare_cached(&sql).map_err(|e| self.fail(e))?;
        select.query_row(params![uid], job_from_row).optional().map_err(|e| self.fail(e))
    }

    /// Every Job (of one namespace, or all), ordered by namespace then name, without pods.
    pub fn list_jobs(&self, namespace: Option<&str>) -> Result<Vec<JobRecord>> {
        let sql = job_select(false, "WHERE ?1 IS NULL OR namespace = ?1 ORDER BY namespace, name");
        let mut select = self.conn.prepare_cached(&sql).map_err(|e| self.fail(e))?;
        let rows = select.query_map(params![namespace], job_from_row).map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.fail(e))
    }

    /// Sets the given columns and inserts the events in one transaction, bumping the version.
    /// Returns the new version; `None` (nothing written) when the Job is gone or its version is
    /// not the expected one.
    pub fn update_job(&mut self, uid: &str, update: &JobUpdate<'_>) -> Result<Option<i64>> {
        self.write(|tx| {
            let mut set = tx.prepare_cached(
                "UPDATE jobs SET
                     status = coalesce(?2, status),
                     pods = coalesce(?3, pods),
                     finished = coalesce(?4, finished),
                     doc = coalesce(?5, doc),
                     labels = coalesce(?6, labels),
                     version = version + 1
                 WHERE uid = ?1 AND (?7 IS NULL OR version = ?7)
                 RETURNING version",
            )?;
            let version: Option<i64> = set
                .query_row(
                    params![
                        uid,
                        update.status,
                        update.pods,
                        update.finished,
                        update.doc,
                        update.labels,
                        update.expected_version
                    ],
                    |row| row.get(0),
                )
                .optional()?;
            if version.is_none() {
                return Ok((None, false));
            }
            let mut event =
                tx.prepare_cached("INSERT OR IGNORE INTO events (uid, seq, body) VALUES (?1, ?2, ?3)")?;
            for (seq, body) in update.events {
                event.execute(params![uid, seq, body])?;
            }
            Ok((version, true))
        })
    }

    /// Compare-and-set of the owner: writes `owner` when the stored owner is `expected` (two
    /// `None`s are equal). Bumps the version.
    pub fn set_owner(&mut self, uid: &str, owner: Option<&str>, expected: Option<&str>) -> Result<bool> {
        self.write(|tx| {
            let mut set = tx.prepare_cached(
                "UPDATE jobs SET owner = ?2, version = version + 1 WHERE uid = ?1 AND owner IS ?3",
            )?;
            let changed = set.execute(params![uid, owner, expected])? == 1;
            Ok((changed, changed))
        })
    }

    /// Marks the Job as being deleted; `false` when it is gone.
    pub fn mark_deleting(&mut self, uid: &str) -> Result<bool> {
        self.write(|tx| {
            let mut set =
                tx.prepare_cached("UPDATE jobs SET deleting = 1, version = version + 1 WHERE uid = ?1")?;
            let changed = set.execute(params![uid])? == 1;
            Ok((changed, changed))
        })
    }

    /// Removes the Job with its events and requests; `false` when it was not stored.
    pub fn delete_job(&mut self, uid: &str) -> Result<bool> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM events WHERE uid = ?1")?.execute(params![uid])?;
            tx.prepare_cached("DELETE FROM requests WHERE uid = ?1")?.execute(params![uid])?;
            let removed = tx.prepare_cached("DELETE FROM jobs WHERE uid = ?1")?.execute(params![uid])? == 1;
            Ok((removed, true))
        })
    }

    /// The Job's events with `seq >= since`, in `seq` order.
    pub fn events(&self, uid: &str, since: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut select = self
            .conn
            .prepare_cached("SELECT seq, body FROM events WHERE uid = ?1 AND seq >= ?2 ORDER BY seq")
            .map_err(|e| self.fail(e))?;
        let rows = select
            .query_map(params![uid, since], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.fail(e))
    }

    /// Queues a request (delete, suspend, scale, ...) for the Job's owner; returns its id.
    pub fn push_request(&mut self, uid: &str, body: &str) -> Result<i64> {
        self.write(|tx| {
            tx.prepare_cached("INSERT INTO requests (uid, body) VALUES (?1, ?2)")?
                .execute(params![uid, body])?;
            Ok((tx.last_insert_rowid(), true))
        })
    }

    /// Takes the Job's queued requests, oldest first: they are removed in the same transaction,
    /// so each is taken once.
    pub fn take_requests(&mut self, uid: &str) -> Result<Vec<String>> {
        self.write(|tx| {
            let mut take = tx.prepare_cached("DELETE FROM requests WHERE uid = ?1 RETURNING id, body")?;
            let mut taken = take
                .query_map(params![uid], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // RETURNING promises no order.
            taken.sort_unstable_by_key(|(id, _)| *id);
            let keep = !taken.is_empty();
            Ok((taken.into_iter().map(|(_, body)| body).collect(), keep))
        })
    }

    /// UID → version of every Job (of one namespace, or all): cheap polling for changes.
    pub fn versions(&self, namespace: Option<&str>) -> Result<Vec<(String, i64)>> {
        let mut select = self
            .conn
            .prepare_cached("SELECT uid, version FROM jobs WHERE ?1 IS NULL OR namespace = ?1")
            .map_err(|e| self.fail(e))?;
        let rows = select
            .query_map(params![namespace], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.fail(e))
    }

    /// UIDs of the finished Jobs beyond the newest `limit` (by finish time), oldest first.
    pub fn finished_beyond(&self, limit: u64) -> Result<Vec<String>> {
        let offset = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut select = self
            .conn
            .prepare_cached(
                "SELECT uid FROM jobs WHERE finished IS NOT NULL
                 ORDER BY finished DESC, uid DESC LIMIT -1 OFFSET ?1",
            )
            .map_err(|e| self.fail(e))?;
        let rows = select.query_map(params![offset], |row| row.get(0)).map_err(|e| self.fail(e))?;
        let mut uids = rows.collect::<rusqlite::Result<Vec<String>>>().map_err(|e| self.fail(e))?;
        uids.reverse();
        Ok(uids)
    }

    /// The first row of `PRAGMA integrity_check`: `"ok"` when the file is sound.
    pub fn integrity_check(&self) -> Result<String> {
        self.conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).map_err(|e| self.fail(e))
    }

    /// The connection itself, for tests that provoke failures (`PRAGMA max_page_count`).
    #[cfg(test)]
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }
}
