//! The agent protocol's frames: what a Job's owner (`super::remote`) and a remote agent
//! (`super::agent`) say to each other over TCP. The framing is the worker protocol's
//! (`super::frames`): a little-endian u32 size, a kind byte, a body. Both halves are Rust, so
//! the round trip tests below pin them together.
//!
//! A container is named by its pod's id and its container number (`-1` for a pod's only
//! container): the `Key` of every frame about one.

use super::frames::{begin, next_frame, Payload};
use crate::controller::{PodId, ProcessEnd};

/// A pod's container: the pod and, for a pod with several, which one.
pub type Key = (PodId, Option<usize>);

const HELLO: u8 = b'H';
const START: u8 = b'S';
const TASK: u8 = b'T';
const KILL: u8 = b'K';
const QUIT: u8 = b'Q';
const STARTED: u8 = b's';
const START_FAILED: u8 = b'f';
const CANCELLED: u8 = b'x';
const LOG: u8 = b'l';
const ENDED: u8 = b'e';
const WARNING: u8 = b'w';

/// What the Job's pods are: commands (a process each) or a Python callable (worker processes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    Commands,
    /// The pickled init dict the workers load the callable from.
    Callable {
        init: Vec<u8>,
        max_workers: u32,
        reuse_workers: bool,
    },
}

/// A command pod's process, as the owner builds it (the agent adds its own environment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// The log file's name, in the agent's folder for the Job.
    pub log_name: String,
}

/// From the owner to an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToAgent {
    /// The first frame of a connection: the Job this connection serves.
    Hello {
        job_uid: String,
        job_name: String,
        work: Work,
    },
    Start {
        key: Key,
        command: Command,
    },
    Task {
        pod: PodId,
        index: Option<u32>,
        attempt: u32,
        name: String,
    },
    /// Stop a container (`key.1` set) or every container of the pod (`key.1` none).
    Kill {
        key: Key,
        grace_ms: u64,
    },
    /// The Job is over: give back what is shared (idle workers), then the connection closes.
    /// A connection that closes without it is a lost owner: every pod is killed.
    Quit,
}

/// From an agent to the owner.
#[derive(Clone, Debug, PartialEq)]
pub enum FromAgent {
    Started(Key),
    StartFailed(Key, String),
    Cancelled(Key),
    /// More of the container's output (sent before the event that ends it).
    Log(Key, Vec<u8>),
    Ended {
        key: Key,
        exit_code: i32,
        end: Option<ProcessEnd>,
        payload: Payload,
    },
    Warning {
        reason: String,
        message: String,
    },
}

fn put_key(out: &mut Vec<u8>, key: Key) {
    out.extend_from_slice(&key.0 .0.to_le_bytes());
    let container = key.1.map_or(-1, |c| i64::try_from(c).unwrap_or(i64::MAX));
    out.extend_from_slice(&container.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_strs<'a>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = &'a str>) {
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for s in items {
        put_str(out, s);
    }
}

/// Appends a frame of `kind` whose body `body` writes.
fn frame(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let mut b = Vec::new();
    body(&mut b);
    begin(out, kind, b.len());
    out.extend_from_slice(&b);
}

/// Reads a body front to back; every read is bounds-checked (`None`: malformed).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn key(&mut self) -> Option<Key> {
        let pod = PodId(self.u64()?);
        let container = match self.i64()? {
            -1 => None,
            c => Some(usize::try_from(c).ok()?),
        };
        Some((pod, container))
    }

    fn str(&mut self) -> Option<String> {
        let len = usize::try_from(self.u32()?).ok()?;
        Some(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn strs(&mut self) -> Option<Vec<String>> {
        let n = self.u32()?;
        // Each string takes four bytes at least: a count beyond that is malformed.
        if n as usize > self.0.len() / 4 {
            return None;
        }
        (0..n).map(|_| self.str()).collect()
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

impl ToAgent {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            ToAgent::Hello { job_uid, job_name, work } => frame(out, HELLO, |b| {
                put_str(b, job_uid);
                put_str(b, job_name);
                match work {
                    Work::Commands => b.push(0),
                    Work::Callable { init, max_workers, reuse_workers } => {
                        b.push(1);
                        b.extend_from_slice(&max_workers.to_le_bytes());
                        b.push(u8::from(*reuse_workers));
                        b.extend_from_slice(init);
                    }
                }
            }),
            ToAgent::Start { key, command } => frame(out, START, |b| {
                put_key(b, *key);
                put_strs(b, command.argv.iter().map(String::as_str));
                let env: Vec<&str> = command.env.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]).collect();
                put_strs(b, env.into_iter());
                put_strs(b, command.working_dir.iter().map(String::as_str));
                put_str(b, &command.log_name);
            }),
            ToAgent::Task { pod, index, attempt, name } => frame(out, TASK, |b| {
                put_key(b, (*pod, None));
                b.extend_from_slice(&index.map_or(-1, i64::from).to_le_bytes());
                b.extend_from_slice(&attempt.to_le_bytes());
                b.extend_from_slice(name.as_bytes());
            }),
            ToAgent::Kill { key, grace_ms } => frame(out, KILL, |b| {
                put_key(b, *key);
                b.extend_from_slice(&grace_ms.to_le_bytes());
            }),
            ToAgent::Quit => frame(out, QUIT, |_| {}),
        }
    }

    pub fn decode(kind: u8, body: &[u8]) -> Option<Self> {
        let mut r = Reader(body);
        Some(match kind {
            HELLO => {
                let (job_uid, job_name) = (r.str()?, r.str()?);
                let work = match r.u8()? {
                    0 => Work::Commands,
                    1 => {
                        let max_workers = r.u32()?;
                        let reuse_workers = r.u8()? != 0;
                        Work::Callable { init: r.rest().to_vec(), max_workers, reuse_workers }
                    }
                    _ => return None,
                };
                ToAgent::Hello { job_uid, job_name, work }
            }
            START => {
                let key = r.key()?;
                let argv = r.strs()?;
                let flat = r.strs()?;
                if flat.len() % 2 != 0 {
                    return None;
                }
                let env = flat.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect();
                let working_dir = r.strs()?.into_iter().next();
                let log_name = r.str()?;
                ToAgent::Start { key, command: Command { argv, env, working_dir, log_name } }
            }
            TASK => {
                let (pod, _) = r.key()?;
                let index = match r.i64()? {
                    -1 => None,
                    i => Some(u32::try_from(i).ok()?),
                };
                let attempt = r.u32()?;
                ToAgent::Task { pod, index, attempt, name: String::from_utf8_lossy(r.rest()).into_owned() }
            }
            KILL => ToAgent::Kill { key: r.key()?, grace_ms: r.u64()? },
            QUIT => ToAgent::Quit,
            _ => return None,
        })
    }
}

impl FromAgent {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            FromAgent::Started(key) => frame(out, STARTED, |b| put_key(b, *key)),
            FromAgent::StartFailed(key, message) => frame(out, START_FAILED, |b| {
                put_key(b, *key);
                b.extend_from_slice(message.as_bytes());
            }),
            FromAgent::Cancelled(key) => frame(out, CANCELLED, |b| put_key(b, *key)),
            FromAgent::Log(key, bytes) => frame(out, LOG, |b| {
                put_key(b, *key);
                b.extend_from_slice(bytes);
            }),
            FromAgent::Ended { key, exit_code, end, payload } => frame(out, ENDED, |b| {
                put_key(b, *key);
                b.extend_from_slice(&exit_code.to_le_bytes());
                let (kind, value, oom, why) = match end {
                    None => (0u8, 0, false, None),
                    Some(ProcessEnd::Exited(code)) => (1, *code, false, None),
                    Some(ProcessEnd::Signaled { signal, oom_killed }) => (2, *signal, *oom_killed, None),
                    Some(ProcessEnd::Unknown(why)) => (3, 0, false, Some(why)),
                };
                b.push(kind);
                b.extend_from_slice(&value.to_le_bytes());
                b.push(u8::from(oom));
                match why {
                    // A lost exit status has no payload: its message is the tail.
                    Some(why) => {
                        b.push(0);
                        b.extend_from_slice(why.as_bytes());
                    }
                    None => {
                        b.push(payload.kind());
                        payload.encode_into(b);
                    }
                }
            }),
            FromAgent::Warning { reason, message } => frame(out, WARNING, |b| {
                put_str(b, reason);
                b.extend_from_slice(message.as_bytes());
            }),
        }
    }

    pub fn decode(kind: u8, body: &[u8]) -> Option<Self> {
        let mut r = Reader(body);
        Some(match kind {
            STARTED => FromAgent::Started(r.key()?),
            START_FAILED => {
                let key = r.key()?;
                FromAgent::StartFailed(key, String::from_utf8_lossy(r.rest()).into_owned())
            }
            CANCELLED => FromAgent::Cancelled(r.key()?),
            LOG => {
                let key = r.key()?;
                FromAgent::Log(key, r.rest().to_vec())
            }
            ENDED => {
                let key = r.key()?;
                let exit_code = r.i32()?;
                let (end_kind, value, oom, payload_kind) = (r.u8()?, r.i32()?, r.u8()? != 0, r.u8()?);
                let rest = r.rest();
                let end = match end_kind {
                    0 => None,
                    1 => Some(ProcessEnd::Exited(value)),
                    2 => Some(ProcessEnd::Signaled { signal: value, oom_killed: oom }),
                    3 => Some(ProcessEnd::Unknown(String::from_utf8_lossy(rest).into_owned())),
                    _ => return None,
                };
                let payload = if end_kind == 3 { Payload::None } else { Payload::decode(payload_kind, rest) };
                FromAgent::Ended { key, exit_code, end, payload }
            }
            WARNING => {
                let reason = r.str()?;
                FromAgent::Warning { reason, message: String::from_utf8_lossy(r.rest()).into_owned() }
            }
            _ => return None,
        })
    }
}

/// Decodes every complete frame at the start of `buf` with `decode` (malformed ones are
/// skipped); returns how many bytes they took.
pub fn decode_all<T>(buf: &[u8], decode: impl Fn(u8, &[u8]) -> Option<T>, out: &mut Vec<T>) -> usize {
    let mut pos = 0;
    while let Some((kind, body, len)) = next_frame(&buf[pos..]) {
        out.extend(decode(kind, body));
        pos += len;
    }
    pos
}

/// Writes the frames sent to `frames` (what is queued at once in one write) until every
/// sender is gone or the connection fails; then closes the write side, which the other end
/// reads as end of file.
pub async fn write_frames(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut frames: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    use tokio::io::AsyncWriteExt;
    while let Some(mut bytes) = frames.recv().await {
        while let Ok(more) = frames.try_recv() {
            bytes.extend_from_slice(&more);
        }
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_agent_round_trip(frame: ToAgent) {
        let mut bytes = Vec::new();
        frame.encode_into(&mut bytes);
        let mut out = Vec::new();
        assert_eq!(decode_all(&bytes, ToAgent::decode, &mut out), bytes.len());
        assert_eq!(out, vec![frame]);
    }

    fn from_agent_round_trip(frame: FromAgent) {
        let mut bytes = Vec::new();
        frame.encode_into(&mut bytes);
        let mut out = Vec::new();
        assert_eq!(decode_all(&bytes, FromAgent::decode, &mut out), bytes.len());
        assert_eq!(out, vec![frame]);
    }

    #[test]
    fn every_frame_to_an_agent_survives_the_round_trip() {
        to_agent_round_trip(ToAgent::Hello {
            job_uid: "u".into(),
            job_name: "j".into(),
            work: Work::Commands,
        });
        to_agent_round_trip(ToAgent::Hello {
            job_uid: "u-1".into(),
            job_name: "pi".into(),
            work: Work::Callable { init: vec![0, 1, 2, 255], max_workers: 3, reuse_workers: false },
        });
        to_agent_round_trip(ToAgent::Start {
            key: (PodId(7), Some(2)),
            command: Command {
                argv: vec!["sh".into(), "-c".into(), "echo ☃".into()],
                env: vec![("A".into(), "1".into()), ("EMPTY".into(), String::new())],
                working_dir: Some("/tmp".into()),
                log_name: "p-0.log".into(),
            },
        });
        to_agent_round_trip(ToAgent::Start {
            key: (PodId(0), None),
            command: Command { argv: vec![], env: vec![], working_dir: None, log_name: String::new() },
        });
        to_agent_round_trip(ToAgent::Task {
            pod: PodId(9),
            index: Some(4),
            attempt: 2,
            name: "pi-4-x".into(),
        });
        to_agent_round_trip(ToAgent::Task { pod: PodId(9), index: None, attempt: 0, name: String::new() });
        to_agent_round_trip(ToAgent::Kill { key: (PodId(u64::MAX), None), grace_ms: 30_000 });
        to_agent_round_trip(ToAgent::Quit);
    }

    #[test]
    fn every_frame_from_an_agent_survives_the_round_trip() {
        let key = (PodId(3), None);
        from_agent_round_trip(FromAgent::Started(key));
        from_agent_round_trip(FromAgent::StartFailed((PodId(3), Some(1)), "failed to start \"x\"".into()));
        from_agent_round_trip(FromAgent::Cancelled(key));
        from_agent_round_trip(FromAgent::Log(key, b"line\n\xff".to_vec()));
        from_agent_round_trip(FromAgent::Ended {
            key,
            exit_code: 137,
            end: Some(ProcessEnd::Signaled { signal: 9, oom_killed: true }),
            payload: Payload::None,
        });
        from_agent_round_trip(FromAgent::Ended {
            key,
            exit_code: 0,
            end: None,
            payload: Payload::Result(vec![128, 5, 75]),
        });
        from_agent_round_trip(FromAgent::Ended {
            key,
            exit_code: 1,
            end: None,
            payload: Payload::Exception(
                vec!["ValueError".into(), "Exception".into()],
                "bad".into(),
                "tb".into(),
            ),
        });
        from_agent_round_trip(FromAgent::Ended {
            key,
            exit_code: 137,
            end: Some(ProcessEnd::Unknown("exit status lost".into())),
            payload: Payload::None,
        });
        from_agent_round_trip(FromAgent::Warning { reason: "WorkerDied".into(), message: "m".into() });
    }

    #[test]
    fn a_malformed_or_partial_frame_decodes_to_nothing() {
        let mut bytes = Vec::new();
        FromAgent::Started((PodId(1), None)).encode_into(&mut bytes);
        let mut out = Vec::new();
        // Incomplete: nothing taken yet.
        assert_eq!(decode_all(&bytes[..bytes.len() - 1], FromAgent::decode, &mut out), 0);
        // Too short for its key: skipped, not a panic.
        let mut short = Vec::new();
        begin(&mut short, STARTED, 3);
        short.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode_all(&short, FromAgent::decode, &mut out), short.len());
        assert!(out.is_empty());
        // A string count larger than the body could hold.
        let mut lying = Vec::new();
        begin(&mut lying, START, 16 + 4);
        lying.extend_from_slice(&[0; 16]);
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut to = Vec::new();
        assert_eq!(decode_all(&lying, ToAgent::decode, &mut to), lying.len());
        assert!(to.is_empty());
    }
}
