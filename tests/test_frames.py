"""The worker protocol's frames against the byte fixtures the Rust codec's tests read too
(``src/runtime/frames_tests.rs``): each decodes to the frame ``frames.json`` describes and
encodes back to the same bytes; the worker's own reading of tasks and cancels agrees."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kjob
from kjob import _frames, _worker

FIXTURES = Path(__file__).parent / "fixtures" / "frames"


def _cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((FIXTURES / "frames.json").read_text(encoding="utf-8"))
    return cases


def _payload(value: dict[str, Any]) -> _frames.Payload:
    kind = value["kind"]
    if kind == "none":
        return None
    if kind == "result":
        return _frames.Result(bytes.fromhex(value["pickle"]))
    if kind == "exception":
        return _frames.Raised(tuple(value["types"]), value["message"], value["detail"])
    if kind == "start_error":
        return _frames.StartError(value["message"])
    assert kind == "result_error", kind
    return _frames.ResultError(tuple(value["types"]), value["message"], value["detail"])


def _expected(case: dict[str, Any]) -> _frames.Frame:
    kind, key = case["kind"], case["key"]
    if kind == "J":
        return _frames.Job(key, case["log_path"], bytes.fromhex(case["init"]))
    if kind == "T":
        return _frames.Task(key, case["pod"], case["index"], case["attempt"], case["name"])
    if kind == "C":
        return _frames.Cancel(key, case["pod"])
    if kind == "F":
        return _frames.Forget(key)
    if kind == "D":
        start, end = case["log"]
        return _frames.Done(key, case["pod"], case["exit_code"], start, end, _payload(case["payload"]))
    if kind == "X":
        return _frames.Cancelled(key, case["pod"])
    assert kind == "R", kind
    return _frames.Retiring(key)


def test_every_kind_has_a_fixture() -> None:
    assert sorted({case["kind"] for case in _cases()}) == ["C", "D", "F", "J", "R", "T", "X"]


@pytest.mark.parametrize("case", _cases(), ids=lambda case: str(case["file"]))
def test_fixture_decodes_to_its_frame_and_encodes_back_to_its_bytes(case: dict[str, Any]) -> None:
    data = (FIXTURES / case["file"]).read_bytes()
    read = _frames.read_frame(data)
    assert read is not None
    frame, end = read
    assert end == len(data)
    expected = _expected(case)
    assert frame == expected
    assert _frames.encode(expected) == data


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def worker() -> Iterator[_worker.Worker]:
    read_end, write_end = os.pipe()
    try:
        yield _worker.Worker(read_end, write_end)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_the_worker_reads_tasks_and_cancels_as_the_fixtures_say(worker: _worker.Worker) -> None:
    batch = _fixture("task_indexed.bin") + _fixture("task_nonindexed.bin") + _fixture("cancel.bin")
    # Fed in two pieces cut inside the second task: the worker waits for the rest of it.
    cut = len(_fixture("task_indexed.bin")) + 7
    worker._parse(batch[:cut])
    assert list(worker._tasks) == [(7, 42, 3, 1, b"sq-3-x7k2p")]
    worker._parse(b"".join(worker._pending) + batch[cut:])
    assert list(worker._tasks) == [(7, 42, 3, 1, b"sq-3-x7k2p"), (2**32 - 1, 2**64 - 1, -1, 0, b"wq-mn4zt")]
    # The cancel names pod 43, which this worker does not hold: nothing is answered.
    assert worker._outbox == b""
    worker._parse(_frames.encode(_frames.Cancel(7, 42)))
    assert [task[1] for task in worker._tasks] == [2**64 - 1]
    assert bytes(worker._outbox) == _frames.encode(_frames.Cancelled(7, 42))


def test_a_pods_exception_is_reported_as_a_raised_payload() -> None:
    class Odd(KeyError):
        pass

    payload = _worker._exception_info(Odd("ü"), "Traceback ...\n")
    body = _frames.DONE_FIELDS.pack(7, 42, 1, 0, 10, _frames.KIND_EXCEPTION) + payload
    frame = _frames.decode(b"D", body)
    qualname = Odd.__qualname__
    types = (f"{__name__}.{qualname}", "KeyError", "LookupError", "Exception", "BaseException")
    assert frame == _frames.Done(7, 42, 1, 0, 10, _frames.Raised(types, "'ü'", "Traceback ...\n"))


def test_incomplete_and_unknown_frames() -> None:
    data = _fixture("done_exception.bin")
    for cut in range(len(data)):
        assert _frames.read_frame(data[:cut]) is None, cut
    # An empty frame is never sent: reading stops at it rather than loop on it.
    assert _frames.read_frame(b"\0\0\0\0D") is None
    # A kind this side does not know is skipped, as the Rust half does.
    assert _frames.read_frame(b"\x03\0\0\0Zab") == (None, 7)
    with pytest.raises(struct.error):
        _frames.decode(b"T", b"\0" * 5)
    with pytest.raises(ValueError, match="shorter than its log path"):
        _frames.decode(b"J", _frames.JOB_FIELDS.pack(1, 9) + b"/")


def _import_users_frames(i: int) -> str:
    import _frames  # type: ignore[import-not-found]

    return str(_frames.WHOSE)


def test_a_users_module_named_frames_is_not_hidden_by_the_workers_codec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker starts as a script, importing its codec from the package folder: the codec
    # must not take the name `_frames` from the user's own module.
    (tmp_path / "_frames.py").write_text('WHOSE = "the user\'s"\n', encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    job = kjob.Job(target=_import_users_frames, completions=1, completion_mode="Indexed")
    try:
        assert job.run(timeout=60).succeeded == 1
        assert job.results() == {0: "the user's"}
    finally:
        job.delete()
