//! The store's errors. Every message names the database file first, so a user who meets one
//! in a traceback knows which file to look at.

use std::fmt;

/// What kind of failure SQLite (or the file system under it) reported. The bindings turn each
/// kind into an `errno`; the core keeps no dependency on Python's notion of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The disk (or the file's size limit) is full: `SQLITE_FULL`.
    Full,
    /// The file or its file system is read-only: `SQLITE_READONLY`, `EROFS`.
    ReadOnly,
    /// The file cannot be opened or the operation is not permitted: `SQLITE_CANTOPEN`,
    /// `SQLITE_PERM`, `SQLITE_AUTH`.
    Access,
    /// Another connection held the lock longer than the busy timeout: `SQLITE_BUSY`,
    /// `SQLITE_LOCKED`.
    Busy,
    /// The folder the file should be in does not exist.
    Missing,
    /// Anything else (I/O errors, corruption, constraint violations, ...).
    Other,
}

/// An error of the store.
#[derive(Debug, PartialEq)]
pub enum StoreError {
    /// SQLite, or the file system under it, failed.
    Failure { path: String, kind: FailureKind, message: String },
    /// The file holds a schema newer than this build understands.
    Newer { path: String, version: i64 },
    /// The file is not a kjob store (not SQLite at all, or someone else's database).
    NotAStore { path: String, reason: String },
    /// The store was closed.
    Closed { path: String },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failure { path, message, .. } => write!(f, "kjob store {path}: {message}"),
            Self::Newer { path, version } => write!(
                f,
                "kjob store {path}: schema version {version} was written by a newer kjob (this kjob \
                 reads versions up to {}); upgrade kjob or use another KJOB_HOME",
                super::SCHEMA_VERSION
            ),
            Self::NotAStore { path, reason } => {
                write!(
                    f,
                    "kjob store {path}: not a kjob store ({reason}); move it away or use another KJOB_HOME"
                )
            }
            Self::Closed { path } => write!(f, "kjob store {path} is closed"),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// Wraps a rusqlite error met while working on the store at `path`.
    pub(crate) fn sqlite(path: &str, error: &rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        let kind = match error.sqlite_error_code() {
            Some(C::DiskFull) => FailureKind::Full,
            Some(C::ReadOnly) => FailureKind::ReadOnly,
            Some(C::CannotOpen | C::PermissionDenied | C::AuthorizationForStatementDenied) => {
                FailureKind::Access
            }
            Some(C::DatabaseBusy | C::DatabaseLocked) => FailureKind::Busy,
            _ => FailureKind::Other,
        };
        Self::Failure { path: path.to_owned(), kind, message: error.to_string() }
    }

    /// The failure's kind, `None` for the errors that are not SQLite/IO failures.
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            Self::Failure { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, StoreError>;
