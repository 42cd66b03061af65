//! Opening a store file: connection settings, recognising a kjob store, and migrating an older
//! schema forward.

use super::error::{FailureKind, Result, StoreError};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::time::{Duration, Instant};

/// The schema this build writes and the newest it reads.
pub const SCHEMA_VERSION: i64 = 1;

/// One step of the schema's history: `MIGRATIONS[n]` brings a version `n` database to `n + 1`.
/// Version 0 is an empty file. A future version 2 appends its step here and bumps
/// [`SCHEMA_VERSION`]; every step runs inside the one `BEGIN IMMEDIATE` transaction of the
/// upgrade, so a crash midway leaves the old version intact.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 0 -> 1: the first schema.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE jobs (
         uid TEXT PRIMARY KEY,
         namespace TEXT NOT NULL,
         name TEXT NOT NULL,
         created REAL NOT NULL,
         finished REAL NULL,
         labels TEXT NOT NULL,
         owner TEXT NULL,
         doc BLOB NOT NULL,
         status BLOB NULL,
         pods BLOB NULL,
         version INTEGER NOT NULL,
         deleting INTEGER NOT NULL DEFAULT 0,
         UNIQUE (namespace, name)
     );
     -- Pruning reads the newest finished Jobs first; unfinished ones are not indexed.
     CREATE INDEX jobs_finished ON jobs (finished) WHERE finished IS NOT NULL;
     CREATE TABLE events (uid TEXT, seq INTEGER, body BLOB, PRIMARY KEY (uid, seq));
     CREATE TABLE requests (id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL, body TEXT NOT NULL);
     CREATE INDEX requests_uid ON requests (uid);",
];

/// Opens (creating when absent) the store at `path` and brings its schema to
/// [`SCHEMA_VERSION`]. The parent folder must exist.
pub(super) fn open(path: &str, busy_timeout: Duration) -> Result<Connection> {
    let fail = |e: rusqlite::Error| StoreError::sqlite(path, &e);
    // No URI flag: a path is a path, even one that starts with "file:".
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_failure(path, &e))?;
    conn.busy_timeout(busy_timeout).map_err(fail)?;
    {
        // One read transaction, so the version and the tables are seen at one moment (another
        // process may be creating the schema meanwhile).
        let snapshot = conn.unchecked_transaction().map_err(fail)?;
        // The first read of the file: a file that is not SQLite fails here.
        let user_version: i64 =
            snapshot.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(|e| {
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
                    StoreError::NotAStore { path: path.to_owned(), reason: e.to_string() }
                } else {
                    // SQLite opens a file it may not write read-only without a word, and only
                    // fails here, making the WAL index beside it: ask the file system why.
                    open_failure(path, &e)
                }
            })?;
        // The version is checked before anything is written, so a newer kjob's file is never
        // touched.
        check_version(path, &snapshot, user_version)?;
        // Dropping the transaction ends it (it wrote nothing).
    }
    // Turning a new file to WAL writes its header. SQLite answers SQLITE_BUSY at once, without
    // its busy handler, when another process holds the lock meanwhile (several processes
    // creating one store): so this waits out the busy timeout itself.
    retry_busy(busy_timeout, || conn.pragma_update(None, "journal_mode", "WAL")).map_err(fail)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(fail)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(fail)?;
    migrate(path, conn)
}

/// Runs `step` again while it fails with SQLITE_BUSY, for up to `timeout`.
fn retry_busy<T>(timeout: Duration, mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match step() {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            done => return done,
        }
    }
}

/// Refuses a file written by a newer kjob, or one that is someone else's database.
fn check_version(path: &str, conn: &Connection, user_version: i64) -> Result<i64> {
    let fail = |e: rusqlite::Error| StoreError::sqlite(path, &e);
    let has_meta: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta')",
            [],
            |row| row.get(0),
        )
        .map_err(fail)?;
    let version = if has_meta {
        let recorded: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| row.get(0))
            .optional()
            .map_err(fail)?;
        let recorded = recorded.and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| StoreError::NotAStore {
            path: path.to_owned(),
            reason: "its meta table records no schema version".to_owned(),
        })?;
        // Version 0 is an empty file: a meta table recording 0 was not written by kjob (the
        // first migration would fail on it, creating a meta table that exists).
        if recorded < 1 {
            return Err(StoreError::NotAStore {
                path: path.to_owned(),
                reason: format!("schema version {recorded} is not one kjob writes"),
            });
        }
        recorded.max(user_version)
    } else {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'", [], |row| {
                row.get(0)
            })
            .map_err(fail)?;
        if tables > 0 || user_version != 0 {
            return Err(StoreError::NotAStore {
                path: path.to_owned(),
                reason: format!("a SQLite database with {tables} tables or indexes but no meta table"),
            });
        }
        0
    };
    if version < 0 {
        return Err(StoreError::NotAStore {
            path: path.to_owned(),
            reason: format!("schema version {version} is not one kjob writes"),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Newer { path: path.to_owned(), version });
    }
    Ok(version)
}

/// Runs the missing migration steps in one write transaction. Another process may be
/// migrating the same file at the same moment: the version is read again under the lock.
fn migrate(path: &str, mut conn: Connection) -> Result<Connection> {
    let fail = |e: rusqlite::Error| StoreError::sqlite(path, &e);
    let user_version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(fail)?;
    if user_version == SCHEMA_VERSION {
        return Ok(conn);
    }
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
        let user_version: i64 =
            tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(fail)?;
        let from = check_version(path, &tx, user_version)?;
        // check_version made sure 0 <= from <= SCHEMA_VERSION.
        for step in MIGRATIONS.iter().skip(usize::try_from(from).unwrap_or(MIGRATIONS.len())) {
            tx.execute_batch(step).map_err(fail)?;
        }
        if from < SCHEMA_VERSION {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [SCHEMA_VERSION.to_string()],
            )
            .map_err(fail)?;
        }
        // user_version mirrors meta, so a quick reader (or `sqlite3 file 'PRAGMA user_version'`)
        // sees the version without knowing our tables.
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(conn)
}

/// SQLite says only "unable to open database file" when a file cannot be opened; asking the
/// file system the same question tells a read-only file system from a missing folder from a
/// permission problem.
fn open_failure(path: &str, error: &rusqlite::Error) -> StoreError {
    let mut failure = StoreError::sqlite(path, error);
    if let StoreError::Failure { kind: kind @ FailureKind::Access, message, .. } = &mut failure {
        // rusqlite appends the path, which the message already starts with.
        if let Some(bare) = message.strip_suffix(&format!(": {path}")) {
            *message = bare.to_owned();
        }
        let probe =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path);
        if let Err(io) = probe {
            *kind = match io.raw_os_error() {
                Some(libc::EROFS) => FailureKind::ReadOnly,
                Some(libc::ENOENT | libc::ENOTDIR) => FailureKind::Missing,
                _ => FailureKind::Access,
            };
            message.push_str(&format!(" ({io})"));
        }
    }
    failure
}
