//! The worker protocol's frames, typed: every message that crosses the pipes between the
//! runtime and a Python worker (`python/kjob/_frames.py` is the Python half, and
//! `python/kjob/_worker.py` explains the protocol). The byte fixtures in
//! `tests/fixtures/frames/` pin both halves to the same bytes: a frame changed on one side
//! only fails a Rust test or a pytest test.
//!
//! A frame is a little-endian u32 size (of what follows it), a kind byte and a body. Bodies
//! are fixed-width little-endian fields followed by at most one variable-length tail, so
//! decoding is a few bounds-checked reads; a frame too short for its fields decodes to `None`.

/// `J`: load a Job's callable (parent to worker).
pub const JOB: u8 = b'J';
/// `T`: run a pod (parent to worker).
pub const TASK: u8 = b'T';
/// `C`: drop a queued pod that has not started (parent to worker).
pub const CANCEL: u8 = b'C';
/// `F`: the Job is gone; free its callable (parent to worker).
pub const FORGET: u8 = b'F';
/// `D`: a pod is done (worker to parent).
pub const DONE: u8 = b'D';
/// `X`: a cancelled pod was dropped (worker to parent).
pub const CANCELLED: u8 = b'X';
/// `R`: the worker retires instead of taking a Job (worker to parent).
pub const RETIRING: u8 = b'R';

/// The bytes before a frame's body: its size and its kind.
pub const HEADER_LEN: usize = 5;

/// A `T` frame's fixed fields (key, pod, index, attempt); the pod's name follows.
const TASK_FIXED: usize = 4 + 8 + 8 + 4;
/// A `D` frame's fixed fields (key, pod, exit code, log start, log end, payload kind).
const DONE_FIXED: usize = 4 + 8 + 4 + 8 + 8 + 1;
/// The index a `T` frame carries for a pod without one (a NonIndexed Job's).
const NO_INDEX: i64 = -1;

/// What a `D` frame's payload holds, by its kind byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Kind 0: nothing (the pod exited, or returned nothing the parent keeps).
    None,
    /// Kind 1: the pickled return value.
    Result(Vec<u8>),
    /// Kind 2: the exception's class and bases (qualified names), its message and its
    /// traceback.
    Exception(Vec<String>, String, String),
    /// Kind 3: the pod could not be set up in the worker (its function or arguments could not
    /// be unpickled, its working directory is missing).
    StartError(String),
    /// Kind 4: the return value could not be pickled: the pickling error's class and bases,
    /// its message, and why the pod failed (one line).
    ResultError(Vec<String>, String, String),
}

impl Payload {
    const NONE: u8 = 0;
    const RESULT: u8 = 1;
    const EXCEPTION: u8 = 2;
    const START_ERROR: u8 = 3;
    const RESULT_ERROR: u8 = 4;

    pub(super) fn kind(&self) -> u8 {
        match self {
            Payload::None => Self::NONE,
            Payload::Result(_) => Self::RESULT,
            Payload::Exception(..) => Self::EXCEPTION,
            Payload::StartError(_) => Self::START_ERROR,
            Payload::ResultError(..) => Self::RESULT_ERROR,
        }
    }

    /// Text is read leniently (invalid UTF-8 replaced): a pod's message must reach the user
    /// even when the worker could not encode it cleanly. An unknown kind carries nothing.
    pub(super) fn decode(kind: u8, rest: &[u8]) -> Self {
        match kind {
            Self::RESULT => Payload::Result(rest.to_vec()),
            Self::EXCEPTION | Self::RESULT_ERROR => {
                let (types, message, detail) = split_exception(rest);
                if kind == Self::EXCEPTION {
                    Payload::Exception(types, message, detail)
                } else {
                    Payload::ResultError(types, message, detail)
                }
            }
            Self::START_ERROR => Payload::StartError(String::from_utf8_lossy(rest).into_owned()),
            _ => Payload::None,
        }
    }

    pub(super) fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Payload::None => {}
            Payload::Result(bytes) => out.extend_from_slice(bytes),
            Payload::Exception(types, message, detail) | Payload::ResultError(types, message, detail) => {
                out.extend_from_slice(types.join("\n").as_bytes());
                out.push(0);
                out.extend_from_slice(message.as_bytes());
                out.push(0);
                out.extend_from_slice(detail.as_bytes());
            }
            Payload::StartError(message) => out.extend_from_slice(message.as_bytes()),
        }
    }
}

/// An exception payload: class names joined by newlines, a NUL, the message, a NUL, the
/// traceback (or, for a result error, why the pod failed).
fn split_exception(rest: &[u8]) -> (Vec<String>, String, String) {
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(3, '\0');
    let types = parts.next().unwrap_or_default().split('\n').map(String::from).collect();
    let message = parts.next().unwrap_or_default().to_string();
    let detail = parts.next().unwrap_or_default().to_string();
    (types, message, detail)
}

/// A frame from the parent to a worker. Borrowed: the Job's pickled callable can be large,
/// and a frame is encoded once, straight from the data it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToWorker<'a> {
    /// Load the Job `key`'s callable from `init` (a pickled dict); its pods' output goes to
    /// `log_path`.
    Job { key: u32, log_path: &'a str, init: &'a [u8] },
    /// Run pod `pod` of Job `key`.
    Task { key: u32, pod: u64, index: Option<u32>, attempt: u32, name: &'a str },
    /// Drop pod `pod` if it has not started.
    Cancel { key: u32, pod: u64 },
    /// The Job `key` is gone.
    Forget { key: u32 },
}

impl<'a> ToWorker<'a> {
    /// Appends the whole frame, header included, to `out` (a batch of frames for one write).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match *self {
            ToWorker::Job { key, log_path, init } => {
                begin(out, JOB, 8 + log_path.len() + init.len());
                out.extend_from_slice(&key.to_le_bytes());
                out.extend_from_slice(&len_u32(log_path.len()).to_le_bytes());
                out.extend_from_slice(log_path.as_bytes());
                out.extend_from_slice(init);
            }
            ToWorker::Task { key, pod, index, attempt, name } => {
                begin(out, TASK, TASK_FIXED + name.len());
                out.extend_from_slice(&key.to_le_bytes());
                out.extend_from_slice(&pod.to_le_bytes());
                out.extend_from_slice(&index.map_or(NO_INDEX, i64::from).to_le_bytes());
                out.extend_from_slice(&attempt.to_le_bytes());
                out.extend_from_slice(name.as_bytes());
            }
            ToWorker::Cancel { key, pod } => encode_key_pod(out, CANCEL, key, pod),
            ToWorker::Forget { key } => encode_key(out, FORGET, key),
        }
    }

    /// The whole frame, header included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes a frame's body (what the worker reads); `None` if it is malformed.
    pub fn decode(kind: u8, body: &'a [u8]) -> Option<Self> {
        let key = u32_at(body, 0)?;
        match kind {
            JOB => {
                let path_len = usize::try_from(u32_at(body, 4)?).ok()?;
                let path = body.get(8..8usize.checked_add(path_len)?)?;
                let log_path = std::str::from_utf8(path).ok()?;
                Some(ToWorker::Job { key, log_path, init: &body[8 + path_len..] })
            }
            TASK => {
                let index = match i64_at(body, 12)? {
                    NO_INDEX => None,
                    index => Some(u32::try_from(index).ok()?),
                };
                let name = std::str::from_utf8(body.get(TASK_FIXED..)?).ok()?;
                Some(ToWorker::Task { key, pod: u64_at(body, 4)?, index, attempt: u32_at(body, 20)?, name })
            }
            CANCEL => Some(ToWorker::Cancel { key, pod: u64_at(body, 4)? }),
            FORGET => Some(ToWorker::Forget { key }),
            _ => None,
        }
    }
}

/// A frame from a worker to the parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromWorker {
    /// Pod `pod` of Job `key` ended with `exit_code`; its output is the byte range `log` of
    /// the worker's log file.
    Done { key: u32, pod: u64, exit_code: i32, log: (u64, u64), payload: Payload },
    /// Pod `pod` was dropped before it started.
    Cancelled { key: u32, pod: u64 },
    /// The worker exits without running the Job `key`'s pods.
    Retiring { key: u32 },
}

impl FromWorker {
    /// Decodes a frame's body (what the parent reads); `None` if it is malformed.
    pub fn decode(kind: u8, body: &[u8]) -> Option<Self> {
        let key = u32_at(body, 0)?;
        match kind {
            RETIRING => Some(FromWorker::Retiring { key }),
            CANCELLED => Some(FromWorker::Cancelled { key, pod: u64_at(body, 4)? }),
            DONE => {
                let payload = Payload::decode(*body.get(DONE_FIXED - 1)?, body.get(DONE_FIXED..)?);
                Some(FromWorker::Done {
                    key,
                    pod: u64_at(body, 4)?,
                    exit_code: i32::from_le_bytes(body.get(12..16)?.try_into().ok()?),
                    log: (u64_at(body, 16)?, u64_at(body, 24)?),
                    payload,
                })
            }
            _ => None,
        }
    }

    /// Appends the whole frame, header included, to `out` (what the worker writes; here for
    /// the fixtures' round trip and for tests that play a worker).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            FromWorker::Done { key, pod, exit_code, log, payload } => {
                let mut body = Vec::with_capacity(DONE_FIXED);
                body.extend_from_slice(&key.to_le_bytes());
                body.extend_from_slice(&pod.to_le_bytes());
                body.extend_from_slice(&exit_code.to_le_bytes());
                body.extend_from_slice(&log.0.to_le_bytes());
                body.extend_from_slice(&log.1.to_le_bytes());
                body.push(payload.kind());
                payload.encode_into(&mut body);
                begin(out, DONE, body.len());
                out.extend_from_slice(&body);
            }
            FromWorker::Cancelled { key, pod } => encode_key_pod(out, CANCELLED, *key, *pod),
            FromWorker::Retiring { key } => encode_key(out, RETIRING, *key),
        }
    }

    /// The whole frame, header included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

/// The next complete frame at the start of `buf`: its kind, its body and its whole length;
/// `None` while the frame is incomplete (or `buf` holds an empty frame, which no side sends).
pub fn next_frame(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    let size = usize::try_from(u32_at(buf, 0)?).ok()?;
    let end = 4usize.checked_add(size)?;
    if size == 0 || buf.len() < end {
        return None;
    }
    Some((buf[4], &buf[HEADER_LEN..end], end))
}

/// A frame whose body is a Job's key (`F`, `R`).
fn encode_key(out: &mut Vec<u8>, kind: u8, key: u32) {
    begin(out, kind, 4);
    out.extend_from_slice(&key.to_le_bytes());
}

/// A frame whose body is a Job's key and a pod's id (`C`, `X`).
fn encode_key_pod(out: &mut Vec<u8>, kind: u8, key: u32, pod: u64) {
    begin(out, kind, 12);
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&pod.to_le_bytes());
}

/// Writes a frame's header for a body of `body_len` bytes.
pub(super) fn begin(out: &mut Vec<u8>, kind: u8, body_len: usize) {
    out.reserve(HEADER_LEN + body_len);
    out.extend_from_slice(&len_u32(body_len + 1).to_le_bytes());
    out.push(kind);
}

/// A length as the protocol's u32. Frames stay far below 4 GiB (the largest is a Job's
/// pickled callable and arguments); the protocol has no way to say more, and encoding must
/// not panic on a thread that serves Python, so a larger length wraps, as it always did.
fn len_u32(len: usize) -> u32 {
    len as u32
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

#[cfg(test)]
#[path = "frames_tests.rs"]
mod tests;
