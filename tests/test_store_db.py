"""The Job store's database layer (``kjob._kjob.Store``) with real files and real processes:
records, versions and conflicts, events, requests, pruning order, schema refusal, two writers
at once, and real failures (a read-only folder, a full file system) leaving the file sound."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kjob._kjob import Store


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "kjob.db")


@pytest.fixture
def store(db: str) -> Store:
    return Store(db)


def insert(store: Store, uid: str, name: str, namespace: str = "default") -> bool:
    return store.insert_job(uid, namespace, name, 12.5, '{"app": "etl"}', b"doc-" + uid.encode(), None)


def test_a_new_file_gets_schema_version_1(db: str) -> None:
    store = Store(db)
    assert Store.SCHEMA_VERSION == 1
    assert store.path == db
    assert repr(store) == f'<kjob Store "{db}">'
    assert store.integrity_check() == "ok"
    store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
        assert conn.execute("SELECT key, value FROM meta").fetchall() == [("schema_version", "1")]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert {"meta", "jobs", "events", "requests"} <= tables
    conn.close()


def test_an_empty_file_is_migrated(db: str) -> None:
    Path(db).write_bytes(b"")
    store = Store(db)
    assert insert(store, "u1", "etl")
    assert store.versions() == {"u1": 1}


def test_insert_and_read_back(store: Store) -> None:
    assert insert(store, "u1", "etl")
    assert not insert(store, "u2", "etl")
    assert insert(store, "u3", "etl", namespace="batch")
    assert store.insert_job("u4", "default", "abc", 1.0, "{}", b"", "owner-1")
    job = store.get_job("default", "etl")
    assert job == {
        "uid": "u1",
        "namespace": "default",
        "name": "etl",
        "created": 12.5,
        "finished": None,
        "labels": '{"app": "etl"}',
        "owner": None,
        "doc": b"doc-u1",
        "status": None,
        "pods": None,
        "version": 1,
        "deleting": False,
    }
    assert store.get_job_by_uid("u2") is None
    assert store.get_job("default", "nope") is None
    listed = [(j["namespace"], j["name"], j["owner"]) for j in store.list_jobs()]
    assert listed == [("batch", "etl", None), ("default", "abc", "owner-1"), ("default", "etl", None)]
    assert [j["uid"] for j in store.list_jobs("batch")] == ["u3"]
    assert store.list_jobs("empty") == []


def test_update_versions_and_conflicts(store: Store) -> None:
    insert(store, "u1", "etl")
    assert store.update_job("u1", status=b"s", pods=b"p", events=[(0, b"e0"), (1, b"e1")]) == 2
    # A stale expected version writes nothing, not even its events.
    assert store.update_job("u1", status=b"stale", events=[(2, b"e2")], expected_version=1) is None
    assert store.update_job("u1", finished=30.0, labels="{}", doc=b"doc2", expected_version=2) == 3
    assert store.update_job("gone", status=b"s") is None
    job = store.get_job_by_uid("u1")
    assert job is not None
    assert [job[k] for k in ["status", "pods", "finished", "labels", "doc", "version"]] == [
        b"s",
        b"p",
        30.0,
        "{}",
        b"doc2",
        3,
    ]
    without_pods = store.get_job_by_uid("u1", with_pods=False)
    assert without_pods is not None and without_pods["pods"] is None
    assert store.events("u1") == [(0, b"e0"), (1, b"e1")]
    assert store.versions() == {"u1": 3}
    assert store.versions("other") == {}


def test_events_since_and_first_write_wins(store: Store) -> None:
    insert(store, "u1", "etl")
    store.update_job("u1", events=[(2, b"two"), (0, b"zero"), (1, b"one")])
    store.update_job("u1", events=[(1, b"ONE"), (3, b"three")])
    assert store.events("u1", 1) == [(1, b"one"), (2, b"two"), (3, b"three")]
    assert store.events("u1", since=4) == []
    assert store.events("nobody") == []


def test_owner_compare_and_set_and_deleting(store: Store) -> None:
    insert(store, "u1", "etl")
    assert not store.set_owner("u1", "a", "b")
    assert store.set_owner("u1", "a", None)
    assert not store.set_owner("u1", "b", None)
    assert store.set_owner("u1", None, "a")
    assert not store.set_owner("gone", "a", None)
    assert store.mark_deleting("u1")
    assert not store.mark_deleting("gone")
    job = store.get_job("default", "etl", with_pods=False)
    assert job is not None and (job["owner"], job["deleting"], job["version"]) == (None, True, 4)


def test_requests_are_taken_once(store: Store) -> None:
    first = store.push_request("u1", '{"verb": "suspend"}')
    second = store.push_request("u1", '{"verb": "resume"}')
    store.push_request("u2", '{"verb": "delete"}')
    assert second > first
    assert store.take_requests("u1") == ['{"verb": "suspend"}', '{"verb": "resume"}']
    assert store.take_requests("u1") == []
    assert store.take_requests("u2") == ['{"verb": "delete"}']


def test_finished_beyond_is_oldest_first(store: Store) -> None:
    for uid, finished in [("a", 3.0), ("b", 1.0), ("c", None), ("d", 2.0), ("e", 4.0)]:
        insert(store, uid, uid)
        if finished is not None:
            store.update_job(uid, finished=finished)
    assert store.finished_beyond(2) == ["b", "d"]
    assert store.finished_beyond(0) == ["b", "d", "a", "e"]
    assert store.finished_beyond(10) == []
    with pytest.raises(OverflowError):
        store.finished_beyond(-1)


def test_delete_takes_events_and_requests(store: Store) -> None:
    for uid in ["u1", "u2"]:
        insert(store, uid, uid)
        store.update_job(uid, events=[(0, b"e")])
        store.push_request(uid, "r")
    assert store.delete_job("u1")
    assert not store.delete_job("u1")
    assert store.get_job_by_uid("u1") is None
    assert store.events("u1") == []
    assert store.take_requests("u1") == []
    assert store.events("u2") == [(0, b"e")]
    assert store.take_requests("u2") == ["r"]
    assert insert(store, "u3", "u1")


def test_closed_store(store: Store, db: str) -> None:
    store.close()
    store.close()
    with pytest.raises(ValueError, match="^kjob store " + db + " is closed$"):
        store.versions()


def test_bad_busy_timeout(db: str) -> None:
    with pytest.raises(ValueError, match=r"^busy_timeout must be a finite number of seconds >= 0, not -1$"):
        Store(db, busy_timeout=-1)
    assert not os.path.exists(db)


def test_refuses_a_newer_schema(db: str) -> None:
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    with pytest.raises(RuntimeError) as caught:
        Store(db)
    assert str(caught.value) == (
        f"kjob store {db}: schema version 2 was written by a newer kjob (this kjob reads versions up to 1); "
        "upgrade kjob or use another KJOB_HOME"
    )


def test_refuses_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite at all\n" * 300)
    with pytest.raises(RuntimeError) as caught:
        Store(str(garbage))
    assert str(caught.value) == (
        f"kjob store {garbage}: not a kjob store (file is not a database); move it away or use another KJOB_HOME"
    )
    assert garbage.read_bytes() == b"not sqlite at all\n" * 300
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (text)")
    conn.close()
    with pytest.raises(RuntimeError) as caught:
        Store(str(foreign))
    assert str(caught.value) == (
        f"kjob store {foreign}: not a kjob store (a SQLite database with 1 tables or indexes but no meta table); "
        "move it away or use another KJOB_HOME"
    )


def test_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "kjob.db"
    with pytest.raises(OSError) as caught:
        Store(str(path))
    assert caught.value.errno == errno.ENOENT
    assert caught.value.strerror == (
        f"kjob store {path}: unable to open database file (No such file or directory (os error 2))"
    )


HOLD_LOCK = """
import sqlite3, sys
holder = sqlite3.connect(sys.argv[1], isolation_level=None)
holder.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
holder.execute("ROLLBACK")
"""


def test_busy_after_the_timeout(db: str) -> None:
    # The lock is held by another process: POSIX locks do not stand between two SQLite
    # libraries (ours and the sqlite3 module's) of one process.
    store = Store(db, busy_timeout=0.05)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    started = time.monotonic()
    with pytest.raises(OSError) as caught:
        store.push_request("u1", "r")
    assert time.monotonic() - started >= 0.05
    assert (caught.value.errno, caught.value.strerror) == (
        errno.EBUSY,
        f"kjob store {db}: database is locked",
    )
    holder.communicate("", timeout=10)
    assert holder.returncode == 0
    assert store.push_request("u1", "r") == 1


def test_threads_share_one_store_and_the_gil_is_released(db: str) -> None:
    store = Store(db, busy_timeout=0.3)
    insert(store, "u1", "etl")

    def bump() -> None:
        for _ in range(50):
            store.update_job("u1", status=b"s")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.versions() == {"u1": 201}
    # While one thread waits out the busy timeout inside SQLite, this one keeps running Python.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    failed: list[int] = []

    def blocked() -> None:
        try:
            store.push_request("u1", "r")
        except OSError as e:
            failed.append(e.errno or 0)

    waiter = threading.Thread(target=blocked)
    waiter.start()
    spins = 0
    while waiter.is_alive():
        spins += 1
        time.sleep(0.001)
    holder.communicate("", timeout=10)
    assert failed == [errno.EBUSY]
    assert spins > 50


def test_big_update_is_fast(store: Store) -> None:
    insert(store, "u1", "etl")
    pods = os.urandom(2 << 20)
    best = float("inf")
    for round_ in range(5):
        events = [(round_ * 100 + i, b"event %d" % i) for i in range(100)]
        started = time.perf_counter()
        assert store.update_job("u1", pods=pods, events=events) == round_ + 2
        best = min(best, time.perf_counter() - started)
    assert best < 0.010, best
    assert len(store.events("u1")) == 500


WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from kjob._kjob import Store

    path, me, ready, go = sys.argv[1:]
    store = Store(path)
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    won = updated = conflicts = 0
    for i in range(150):
        won += store.insert_job(f"{me}-{i}", "default", f"job-{i}", float(i), "{}", me.encode(), None)
        version = store.versions()["shared"]
        new = store.update_job("shared", status=me.encode(), events=[(version, me.encode())],
                               expected_version=version)
        if new is None:
            conflicts += 1
        else:
            assert new == version + 1, (new, version)
            updated += 1
        store.push_request("shared", f"{me}-{i}")
    print(json.dumps({"won": won, "updated": updated, "conflicts": conflicts}))
    """
)


def test_two_processes_write_the_same_rows(store: Store, db: str, tmp_path: Path) -> None:
    insert(store, "shared", "shared")
    go = tmp_path / "go"
    workers = []
    for me in ["a", "b"]:
        ready = tmp_path / f"ready-{me}"
        args = [sys.executable, "-c", WORKER, db, me, str(ready), str(go)]
        workers.append(
            (ready, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        )
    deadline = time.monotonic() + 30
    while not all(ready.exists() for ready, _ in workers) and time.monotonic() < deadline:
        time.sleep(0.001)
    go.touch()
    results = []
    for _, worker in workers:
        out, err = worker.communicate(timeout=60)
        assert (worker.returncode, err) == (0, "")
        results.append(json.loads(out))
    # Each name went to exactly one process.
    assert results[0]["won"] + results[1]["won"] == 150
    jobs = [j for j in store.list_jobs() if j["name"].startswith("job-")]
    assert sorted(j["name"] for j in jobs) == sorted(f"job-{i}" for i in range(150))
    assert all(j["uid"] == f"{j['doc'].decode()}-{j['name'][4:]}" for j in jobs)
    # Every successful update bumped the version once and left one event, at the version it saw.
    updated = results[0]["updated"] + results[1]["updated"]
    assert results[0]["conflicts"] + results[1]["conflicts"] == 300 - updated
    shared = store.get_job_by_uid("shared")
    assert shared is not None and shared["version"] == 1 + updated
    assert [seq for seq, _ in store.events("shared")] == list(range(1, 1 + updated))
    taken = store.take_requests("shared")
    assert len(taken) == 300
    for me in ["a", "b"]:
        assert [r for r in taken if r.startswith(me)] == [f"{me}-{i}" for i in range(150)]
    assert store.integrity_check() == "ok"


def run_child(script: str, folder: Path, unshare: list[str]) -> list[object]:
    """Runs ``script`` (given ``folder`` as its argument) in a child process, under
    ``unshare(1)`` with these flags when any; returns the JSON values it printed, one a line.
    Skips when the kernel refuses the namespaces."""
    prefix: list[str] = []
    if unshare:
        found = shutil.which("unshare")
        if found is None:
            pytest.skip("needs unshare(1)")
        probe = subprocess.run([found, *unshare, "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"unshare {' '.join(unshare)} refused: {probe.stderr.strip()}")
        prefix = [found, *unshare]
    argv = [*prefix, sys.executable, "-c", textwrap.dedent(ATTEMPT) + textwrap.dedent(script), str(folder)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    return [json.loads(line) for line in done.stdout.splitlines()]


ATTEMPT = """
import errno, json, os, sys
from kjob._kjob import Store

def attempt(call):
    try:
        return ["ok", call()]
    except OSError as e:
        return [errno.errorcode[e.errno], e.strerror]
"""


def test_a_read_only_folder(tmp_path: Path) -> None:
    """In a folder the process may not write, a new store fails with EACCES and an existing one
    with EROFS (SQLite cannot make its WAL index beside it); a read-only store file in a
    writable folder still reads, and its writes fail with EROFS and change nothing. Root
    ignores permissions, so as root the child runs in a user namespace, without capabilities."""
    locked, writable = tmp_path / "locked", tmp_path / "writable"
    for folder in [locked, writable]:
        folder.mkdir()
        store = Store(str(folder / "kjob.db"))
        insert(store, "u1", "etl")
        store.close()
        (folder / "kjob.db").chmod(0o444)
    locked.chmod(0o555)
    script = """
        locked, writable = os.path.join(sys.argv[1], "locked"), os.path.join(sys.argv[1], "writable")
        print(json.dumps(attempt(lambda: Store(os.path.join(locked, "new.db")).path)))
        print(json.dumps(attempt(lambda: Store(os.path.join(locked, "kjob.db")).path)))
        store = Store(os.path.join(writable, "kjob.db"))
        print(json.dumps(attempt(lambda: store.get_job("default", "etl")["version"])))
        print(json.dumps(attempt(lambda: store.mark_deleting("u1"))))
        print(json.dumps(attempt(lambda: store.get_job("default", "etl")["deleting"])))
        print(json.dumps(attempt(lambda: store.integrity_check())))
    """
    try:
        lines = run_child(script, tmp_path, ["-U"] if os.geteuid() == 0 else [])
    finally:
        locked.chmod(0o755)
    assert lines == [
        [
            "EACCES",
            f"kjob store {locked / 'new.db'}: unable to open database file (Permission denied (os error 13))",
        ],
        ["EROFS", f"kjob store {locked / 'kjob.db'}: attempt to write a readonly database"],
        ["ok", 1],
        ["EROFS", f"kjob store {writable / 'kjob.db'}: attempt to write a readonly database"],
        ["ok", False],
        ["ok", "ok"],
    ]
    assert sorted(os.listdir(locked)) == ["kjob.db"]


def test_a_full_and_then_read_only_file_system(tmp_path: Path) -> None:
    """A real 1 MiB tmpfs, mounted in a private mount namespace: a 2 MiB write fails with
    ENOSPC and leaves the job, its events and the file as they were; remounted read-only, a new
    store fails with EROFS."""
    script = """
        import subprocess
        folder = os.path.join(sys.argv[1], "small")
        os.mkdir(folder)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder], check=True)
        store = Store(os.path.join(folder, "kjob.db"))
        store.insert_job("u1", "default", "etl", 1.0, "{}", b"doc", None)
        store.update_job("u1", status=b"before", events=[(0, b"first")])
        big = os.urandom(2 << 20)
        print(json.dumps(attempt(lambda: store.update_job("u1", pods=big, status=b"after", events=[(1, b"lost")]))))
        job = store.get_job_by_uid("u1")
        print(json.dumps([job["status"].decode(), job["pods"], job["version"], len(store.events("u1"))]))
        print(json.dumps(store.integrity_check()))
        # The space comes back with the failed transaction.
        print(json.dumps(attempt(lambda: store.update_job("u1", pods=b"small"))))
        store.close()
        subprocess.run(["mount", "-o", "remount,ro", folder], check=True)
        print(json.dumps(attempt(lambda: Store(os.path.join(folder, "other.db")).path)))
    """
    lines = run_child(script, tmp_path, ["-Urm"])
    small = tmp_path / "small"
    assert lines == [
        ["ENOSPC", f"kjob store {small / 'kjob.db'}: database or disk is full"],
        ["before", None, 2, 1],
        "ok",
        ["ok", 3],
        [
            "EROFS",
            f"kjob store {small / 'other.db'}: unable to open database file (Read-only file system (os error 30))",
        ],
    ]


def test_a_forked_child_must_open_its_own(db: str) -> None:
    store = Store(db)
    insert(store, "u1", "etl")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            store.versions()
        except RuntimeError as e:
            expected = f"kjob store {db} was opened by process {os.getppid()} before a fork: open it again in this process"
            code = 0 if str(e) == expected and Store(db).versions() == {"u1": 1} else 2
        finally:
            store.close()
            del store
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The child's leaving did not disturb the parent's connection.
    assert store.update_job("u1", status=b"s") == 2
    assert store.integrity_check() == "ok"


OPENER = """
import os, sys, time
from kjob._kjob import Store
path, go = sys.argv[1:]
while not os.path.exists(go):
    time.sleep(0.001)
store = Store(path)
print(store.insert_job(str(os.getpid()), "default", "first", 1.0, "{}", b"", None))
"""


def test_processes_creating_one_file_at_once(tmp_path: Path) -> None:
    db, go = tmp_path / "kjob.db", tmp_path / "go"
    openers = [
        subprocess.Popen([sys.executable, "-c", OPENER, str(db), str(go)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    time.sleep(0.3)
    go.touch()
    answers = sorted(opener.communicate(timeout=60)[0] for opener in openers)
    assert [opener.returncode for opener in openers] == [0, 0, 0, 0]
    assert answers == ["False\n", "False\n", "False\n", "True\n"]
    store = Store(str(db))
    assert [j["name"] for j in store.list_jobs()] == ["first"]
    assert store.integrity_check() == "ok"
