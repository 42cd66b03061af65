"""``kjob.DaskExecutor``: the pods of a Job run on the workers of a Dask cluster.

Dask provides the machines, their lifecycle and their addresses; kjob's controller keeps
every Job rule here, in the Job's own process. Each Dask worker hosts one kjob agent
(:mod:`kjob._agent`), a child process of the worker process started through
``client.run``: pods go straight to the agents over TCP, without a scheduler round trip per
pod, and each pod is a process of its own there (a command, or a kjob worker running the
callable), so ``delete()``, ``suspend()`` and deadlines can kill it.

A worker that dies takes its agent with it: the Job's connection to it drops and its pods
fail with the ``DisruptionTarget`` condition (reason ``DeletionByPodGC``), as pods of a
node that no longer exists. A worker the scheduler removes is treated the same way. If the
scheduler itself goes away, every node is given up: running pods fail likewise and new pods
cannot start (``StartError``, naming the scheduler), so the Job ends by its own rules.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from ._kjob import KjobError

if TYPE_CHECKING:
    from ._kjob import NativeJob, RemoteNodes

#: How often the scheduler is asked which workers it has.
WATCH_INTERVAL = 0.2

INSTALL_HINT = "kjob.DaskExecutor needs Dask's distributed package: pip install 'kjob[dask]'"


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return distributed


# In a Dask worker process: its agent, started once and kept for every later Job.
_agent_lock = threading.Lock()
_agent: Any = None  # subprocess.Popen[bytes], imported where it is made
_agent_address = ""


def _start_agent(dask_worker: Any) -> tuple[str, int]:
    """Runs in the Dask worker (through ``client.run``): starts the worker's kjob agent, a
    child of the worker process, unless it runs already. Returns its address and the
    worker's thread count (how many pods it runs at once)."""
    global _agent, _agent_address
    import subprocess
    from urllib.parse import urlsplit

    with _agent_lock:
        if _agent is None or _agent.poll() is not None:
            host = urlsplit(dask_worker.address).hostname or "127.0.0.1"
            # The pipe on its stdin is the agent's lifeline: it exits (killing its pods)
            # when the worker process closes it or dies. Its own session keeps a Ctrl-C
            # sent to the worker's terminal from reaching the agent before the worker.
            _agent = subprocess.Popen(
                [sys.executable, "-m", "kjob._agent", host],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
            assert _agent.stdout is not None
            line = _agent.stdout.readline().decode().strip()
            if not line:
                raise RuntimeError(f"the kjob agent on {dask_worker.address} did not start")
            _agent_address = line
        nthreads = getattr(dask_worker.state, "nthreads", None) or getattr(dask_worker, "nthreads", None)
        return _agent_address, int(nthreads or 1)


class DaskExecutor:
    """Runs a Job's pods on the workers of a Dask cluster.

    ``client_or_address``: a ``distributed.Client``, or the scheduler's address
    (``"tcp://HOST:PORT"``; a client is made for it). Use it as
    ``kjob.Job(..., executor=kjob.DaskExecutor(client))``; one executor serves many Jobs.

    Each worker runs as many pods at once as it has threads (``--nthreads``), the Job's
    ``parallelism`` caps them across the cluster, and each pod goes to the least loaded
    worker. ``Pod.node_name`` is the worker's address.
    """

    def __init__(self, client_or_address: Any, *, connect_timeout: float = 10.0) -> None:
        distributed = _distributed()
        if isinstance(client_or_address, str):
            address = client_or_address
            try:
                self._client = distributed.Client(address, timeout=connect_timeout, set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise KjobError(f"cannot reach the Dask scheduler at {address}: {e}") from e
            self._owns_client = True
        elif isinstance(client_or_address, distributed.Client):
            self._client = client_or_address
            self._owns_client = False
        else:
            raise TypeError(
                "DaskExecutor needs a distributed.Client or a scheduler address, not "
                f"{type(client_or_address).__name__}"
            )
        self._connect_timeout = connect_timeout

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` it uses."""
        return self._client

    @property
    def scheduler_address(self) -> str:
        return str(self._client.scheduler.address)

    def close(self) -> None:
        """Closes the client, if this executor made it."""
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.scheduler_address!r})"

    def _agents(self) -> list[tuple[str, str, int]]:
        """``(worker address, agent address, threads)`` of every worker, starting agents."""
        if self._client.status != "running":
            raise KjobError(
                f"the Dask scheduler at {self.scheduler_address} is gone (client {self._client.status})"
            )
        try:
            replies = self._client.run(_start_agent, on_error="return")
        except (OSError, TimeoutError) as e:
            raise KjobError(f"the Dask scheduler at {self.scheduler_address} is unreachable: {e}") from e
        agents = [(w, reply[0], reply[1]) for w, reply in sorted(replies.items()) if isinstance(reply, tuple)]
        if not agents:
            errors = "; ".join(f"{w}: {r}" for w, r in replies.items())
            raise KjobError(
                f"the Dask cluster at {self.scheduler_address} has no worker that can run pods"
                + (f" ({errors})" if errors else "")
            )
        return agents

    def _prepare(self, native: NativeJob, init: bytes | None, reuse_workers: bool) -> None:
        agents = self._agents()
        nodes = native.set_remote(agents, init, reuse_workers, self._connect_timeout)
        watcher = threading.Thread(
            target=self._watch,
            args=(native, nodes, {worker for worker, _, _ in agents}),
            name=f"kjob-dask-watch-{id(native):x}",
            daemon=True,
        )
        watcher.start()

    def _watch(self, native: NativeJob, nodes: RemoteNodes, workers: set[str]) -> None:
        """Until the Job is over: the workers the scheduler removed lose their pods, and a
        scheduler that went away takes every node with it."""
        scheduler = self.scheduler_address
        while not native.wait(WATCH_INTERVAL):
            if self._client.status != "running":
                nodes.fail(f"the Dask scheduler at {scheduler} went away (client {self._client.status})")
                return
            try:
                present = set(self._client.scheduler_info(n_workers=-1).get("workers", {}))
            except Exception:  # the scheduler is going away: the status says so next time
                continue
            for worker in sorted(workers - present):
                nodes.lose(worker)
            workers &= present


def prepare_executor(
    executor: DaskExecutor, native: NativeJob, init: bytes | None, reuse_workers: bool
) -> None:
    """Before a Job starts (``Job.start()``): its pods will run on the executor's cluster.
    ``init``: the pickled callable of a callable Job."""
    executor._prepare(native, init, reuse_workers)
