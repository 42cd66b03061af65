//! The codec against the byte fixtures that `tests/test_frames.py` reads too: each fixture
//! decodes to the frame `frames.json` describes and encodes back to the same bytes.

use super::*;
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/frames")
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("frames.json")).expect("frames.json is readable");
    serde_json::from_str(&text).expect("frames.json is a JSON list")
}

fn u64_of(case: &Value, field: &str) -> u64 {
    case[field].as_u64().unwrap_or_else(|| panic!("{field} is an unsigned integer in {case}"))
}

fn u32_of(case: &Value, field: &str) -> u32 {
    u32::try_from(u64_of(case, field)).expect("fits in u32")
}

fn str_of<'a>(case: &'a Value, field: &str) -> &'a str {
    case[field].as_str().unwrap_or_else(|| panic!("{field} is a string in {case}"))
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits")).collect()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().expect("a list").iter().map(|v| v.as_str().expect("strings").to_string()).collect()
}

fn payload(value: &Value) -> Payload {
    match str_of(value, "kind") {
        "none" => Payload::None,
        "result" => Payload::Result(hex(str_of(value, "pickle"))),
        "exception" => Payload::Exception(
            strings(&value["types"]),
            str_of(value, "message").into(),
            str_of(value, "detail").into(),
        ),
        "start_error" => Payload::StartError(str_of(value, "message").into()),
        "result_error" => Payload::ResultError(
            strings(&value["types"]),
            str_of(value, "message").into(),
            str_of(value, "detail").into(),
        ),
        other => panic!("unknown payload kind {other}"),
    }
}

fn from_worker(case: &Value) -> FromWorker {
    let key = u32_of(case, "key");
    match str_of(case, "kind") {
        "D" => FromWorker::Done {
            key,
            pod: u64_of(case, "pod"),
            exit_code: i32::try_from(case["exit_code"].as_i64().expect("an integer")).expect("fits in i32"),
            log: (case["log"][0].as_u64().expect("log start"), case["log"][1].as_u64().expect("log end")),
            payload: payload(&case["payload"]),
        },
        "X" => FromWorker::Cancelled { key, pod: u64_of(case, "pod") },
        "R" => FromWorker::Retiring { key },
        other => panic!("{other} is not a worker's frame"),
    }
}

#[test]
fn every_fixture_decodes_to_its_frame_and_encodes_back_to_its_bytes() {
    let cases = manifest();
    // One fixture at least per kind: a kind added without a fixture is caught here.
    let mut kinds: Vec<&str> = cases.iter().map(|c| str_of(c, "kind")).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds, ["C", "D", "F", "J", "R", "T", "X"]);
    for case in &cases {
        let file = str_of(case, "file");
        let bytes = std::fs::read(fixtures().join(file)).expect("the fixture is readable");
        let (kind, body, len) = next_frame(&bytes).unwrap_or_else(|| panic!("{file} holds one whole frame"));
        assert_eq!(len, bytes.len(), "{file}");
        assert_eq!(kind, str_of(case, "kind").as_bytes()[0], "{file}");
        if [JOB, TASK, CANCEL, FORGET].contains(&kind) {
            let init = case.get("init").and_then(Value::as_str).map(hex).unwrap_or_default();
            let key = u32_of(case, "key");
            let expected = match kind {
                JOB => ToWorker::Job { key, log_path: str_of(case, "log_path"), init: &init },
                TASK => ToWorker::Task {
                    key,
                    pod: u64_of(case, "pod"),
                    index: case["index"].as_u64().map(|i| u32::try_from(i).expect("fits in u32")),
                    attempt: u32_of(case, "attempt"),
                    name: str_of(case, "name"),
                },
                CANCEL => ToWorker::Cancel { key, pod: u64_of(case, "pod") },
                _ => ToWorker::Forget { key },
            };
            assert_eq!(ToWorker::decode(kind, body), Some(expected.clone()), "{file}");
            assert_eq!(expected.encode(), bytes, "{file}");
        } else {
            let expected = from_worker(case);
            assert_eq!(FromWorker::decode(kind, body), Some(expected.clone()), "{file}");
            assert_eq!(expected.encode(), bytes, "{file}");
        }
    }
}

#[test]
fn frames_written_back_to_back_are_read_one_by_one() {
    let mut batch = Vec::new();
    ToWorker::Task { key: 1, pod: 2, index: Some(0), attempt: 0, name: "a-0-x" }.encode_into(&mut batch);
    ToWorker::Cancel { key: 1, pod: 2 }.encode_into(&mut batch);
    let (kind, body, len) = next_frame(&batch).expect("a whole frame");
    assert_eq!((kind, body.len(), len), (TASK, 24 + 5, 34));
    let (kind, body, rest) = next_frame(&batch[len..]).expect("a second whole frame");
    assert_eq!(ToWorker::decode(kind, body), Some(ToWorker::Cancel { key: 1, pod: 2 }));
    assert_eq!(len + rest, batch.len());
}

#[test]
fn incomplete_and_malformed_frames_are_refused() {
    let done =
        FromWorker::Done { key: 1, pod: 2, exit_code: 0, log: (0, 0), payload: Payload::None }.encode();
    // Not yet whole: wait for more bytes.
    for cut in 0..done.len() {
        assert_eq!(next_frame(&done[..cut]), None, "cut at {cut}");
    }
    // An empty frame (size 0) is never sent; reading stops at it rather than loop on it.
    assert_eq!(next_frame(&[0, 0, 0, 0, b'D']), None);
    // Bodies too short for their fixed fields.
    assert_eq!(FromWorker::decode(DONE, &done[HEADER_LEN..done.len() - 1]), None);
    assert_eq!(FromWorker::decode(CANCELLED, &[1, 0, 0, 0, 2]), None);
    assert_eq!(FromWorker::decode(RETIRING, &[1, 0, 0]), None);
    assert_eq!(FromWorker::decode(TASK, &done[HEADER_LEN..]), None, "a parent's kind from a worker");
    assert_eq!(ToWorker::decode(DONE, &[1, 0, 0, 0]), None, "a worker's kind from the parent");
    // A log path longer than the body, and a path that is not UTF-8.
    assert_eq!(ToWorker::decode(JOB, &[1, 0, 0, 0, 9, 0, 0, 0, b'/']), None);
    assert_eq!(ToWorker::decode(JOB, &[1, 0, 0, 0, 1, 0, 0, 0, 0xff]), None);
    // A negative index other than "none".
    let mut task = ToWorker::Task { key: 1, pod: 2, index: None, attempt: 0, name: "n" }.encode();
    task[HEADER_LEN + 12..HEADER_LEN + 20].copy_from_slice(&(-2i64).to_le_bytes());
    assert_eq!(ToWorker::decode(TASK, &task[HEADER_LEN..]), None);
}

/// Rewrites a frame's size after bytes were appended to it.
fn fix_size(frame: &mut [u8]) {
    let size = u32::try_from(frame.len() - 4).expect("small");
    frame[0..4].copy_from_slice(&size.to_le_bytes());
}

#[test]
fn payload_text_that_is_not_utf8_still_reaches_the_user() {
    let mut body = Vec::new();
    FromWorker::Done {
        key: 1,
        pod: 2,
        exit_code: 1,
        log: (0, 0),
        payload: Payload::StartError(String::new()),
    }
    .encode_into(&mut body);
    body.extend_from_slice(b"bad \xff byte");
    fix_size(&mut body);
    let (kind, frame_body, _) = next_frame(&body).expect("a whole frame");
    let Some(FromWorker::Done { payload: Payload::StartError(message), .. }) =
        FromWorker::decode(kind, frame_body)
    else {
        panic!("a start error")
    };
    assert_eq!(message, "bad \u{fffd} byte");
}

#[test]
fn an_unknown_payload_kind_carries_nothing() {
    let mut frame =
        FromWorker::Done { key: 1, pod: 2, exit_code: 0, log: (0, 0), payload: Payload::None }.encode();
    frame[HEADER_LEN + 32] = 9;
    frame.extend_from_slice(b"ignored");
    fix_size(&mut frame);
    let (kind, body, _) = next_frame(&frame).expect("a whole frame");
    assert!(matches!(FromWorker::decode(kind, body), Some(FromWorker::Done { payload: Payload::None, .. })));
}
