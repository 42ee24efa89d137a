"""A Spark standalone cluster on this machine: one master and N workers on 127.0.0.1.

    python infra/standalone/cluster.py up   [--state DIR] [--workers 2] [--worker-memory 1g]
    python infra/standalone/cluster.py down [--state DIR]
    python infra/standalone/cluster.py status [--state DIR]

The daemons are the installed pyspark's own (``bin/spark-class`` with Spark's Master and
Worker classes; nothing is downloaded). Each runs in its own process group; their pids, ports
and logs are kept in the state folder, so ``down`` stops exactly what ``up`` started. ``up``
returns once the master reports every worker ALIVE (polled from its JSON status page, with a
deadline) and prints ``spark://127.0.0.1:<port>``. The tests start their cluster with the same
:func:`start` and stop it with :func:`stop`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cardlake import class_archive

DEFAULT_STATE = Path(os.environ.get("CARDLAKE_CLUSTER_STATE", "/tmp/cardlake-cluster"))
DEFAULT_MASTER_PORT = 7077
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class ClusterError(RuntimeError):
    """The cluster did not start (the message names the log to read) or is not running."""


@dataclass
class ClusterState:
    """What ``up`` started: enough for ``down`` to stop it and for clients to reach it."""

    master_url: str
    master_port: int
    master_ui_port: int
    pids: list[int] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.master_ui_port}"


def spark_home() -> Path:
    """The installed pyspark's folder: its ``bin/spark-class`` and ``jars/`` are Spark's."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _env() -> dict[str, str]:
    home = spark_home()
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(home),
        SPARK_LOCAL_IP="127.0.0.1",  # bind every daemon to loopback only
        SPARK_MASTER_HOST="127.0.0.1",
        # The workers' Python for executors unless a submit says otherwise (spark.pyspark.python).
        PYSPARK_PYTHON=env.get("PYSPARK_PYTHON", sys.executable),
    )
    # The master and workers load Spark's classes from the machine's archive, as drivers do.
    if archive := class_archive.java_options():
        env["SPARK_DAEMON_JAVA_OPTS"] = f"{env.get('SPARK_DAEMON_JAVA_OPTS', '')} {archive}".strip()
    return env


def _launch(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(),
            start_new_session=True,  # own process group: stop() kills the JVM and its children
        )


def master_status(ui_port: int) -> dict[str, object]:
    """The master's JSON status page (workers, their state, running applications)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


def _alive_workers(ui_port: int) -> int:
    try:
        status = master_status(ui_port)
    except (urllib.error.URLError, OSError, ValueError):
        return -1
    workers = status.get("workers", [])
    return sum(1 for w in workers if isinstance(w, dict) and w.get("state") == "ALIVE")


def start(
    state_dir: Path,
    *,
    workers: int = 2,
    worker_cores: int = 1,
    worker_memory: str = "1g",
    master_port: int | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> ClusterState:
    """Starts a master and ``workers`` workers on loopback; returns once all are ALIVE.

    Args:
        state_dir: where pids, ports, logs and the workers' scratch folders go.
        workers: number of worker daemons.
        worker_cores: cores each worker offers.
        worker_memory: memory each worker offers to executors (``512m``, ``1g``).
        master_port: the master's RPC port; a free one when None.
        timeout_s: deadline for the master and every worker to come up.

    Raises:
        ClusterError: a daemon exited or the deadline passed; the message names its log.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    if (state_dir / "state.json").exists():
        raise ClusterError(f"a cluster is already recorded in {state_dir}; run `down` first")
    port = master_port or free_port()
    if not _port_free(port):
        raise ClusterError(f"port 127.0.0.1:{port} is taken; is another master running?")
    ui_port = free_port()
    state = ClusterState(
        master_url=f"spark://127.0.0.1:{port}", master_port=port, master_ui_port=ui_port
    )
    procs: list[subprocess.Popen[bytes]] = []

    def record(proc: subprocess.Popen[bytes], log: Path) -> None:
        procs.append(proc)
        state.pids.append(proc.pid)
        state.logs.append(str(log))
        (state_dir / "state.json").write_text(json.dumps(asdict(state), indent=2))

    deadline = time.monotonic() + timeout_s
    try:
        log = state_dir / "master.log"
        record(
            _launch(
                [
                    MASTER_CLASS,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webui-port",
                    str(ui_port),
                ],
                log,
            ),
            log,
        )
        _wait(lambda: _alive_workers(ui_port) >= 0, procs, state, deadline, "master")
        for index in range(workers):
            work = state_dir / f"worker-{index}"
            work.mkdir(exist_ok=True)
            log = state_dir / f"worker-{index}.log"
            record(
                _launch(
                    [
                        WORKER_CLASS,
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        str(worker_cores),
                        "--memory",
                        worker_memory,
                        "--webui-port",
                        str(free_port()),
                        "--work-dir",
                        str(work),
                        state.master_url,
                    ],
                    log,
                ),
                log,
            )
        _wait(lambda: _alive_workers(ui_port) >= workers, procs, state, deadline, "workers")
    except BaseException:
        stop(state_dir)
        raise
    return state


def _wait(ready, procs, state: ClusterState, deadline: float, what: str) -> None:  # type: ignore[no-untyped-def]
    while time.monotonic() < deadline:
        for proc, log in zip(procs, state.logs, strict=True):
            if proc.poll() is not None:
                raise ClusterError(f"{what}: a daemon exited with {proc.returncode}; see {log}")
        if ready():
            return
        time.sleep(0.5)
    raise ClusterError(f"{what} not ready before the deadline; see {', '.join(state.logs)}")


def load_state(state_dir: Path) -> ClusterState:
    path = state_dir / "state.json"
    if not path.exists():
        raise ClusterError(f"no cluster recorded in {state_dir} (run `up` first)")
    return ClusterState(**json.loads(path.read_text()))


def stop(state_dir: Path, *, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stops the process groups ``start`` recorded in ``state_dir`` (TERM, then KILL)."""
    path = state_dir / "state.json"
    if not path.exists():
        return
    state = ClusterState(**json.loads(path.read_text()))
    for pid in reversed(state.pids):  # workers first, then the master
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for pid in state.pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
    path.unlink()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session made each daemon its own group leader
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it so it is not a zombie
        if reaped == pid:
            return False
    except ChildProcessError:
        pass  # started by another process (`make cluster-up`): fall back to a signal probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A Spark standalone cluster on 127.0.0.1")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-cores", type=int, default=1)
    parser.add_argument("--worker-memory", default="1g")
    parser.add_argument("--port", type=int, default=DEFAULT_MASTER_PORT)
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            state = start(
                args.state,
                workers=args.workers,
                worker_cores=args.worker_cores,
                worker_memory=args.worker_memory,
                master_port=args.port,
            )
            print(f"{state.master_url} (status page {state.ui_url}; logs in {args.state})")
        elif args.action == "down":
            stop(args.state)
            print("cluster stopped")
        else:
            state = load_state(args.state)
            alive = _alive_workers(state.master_ui_port)
            print(f"{state.master_url}: {max(alive, 0)} worker(s) alive")
            return 0 if alive > 0 else 1
    except ClusterError as exc:
        print(f"cardlake: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
