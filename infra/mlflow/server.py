"""An MLflow tracking server for the cluster profile: a SQLite backend and proxied artefacts.

    python infra/mlflow/server.py --store /srv/cardlake-mlflow [--port 5000]   # Ctrl-C stops it

Runs, the model registry and its aliases live in ``<store>/mlflow.db``; artefacts (models,
plots) in ``<store>/artifacts``, served by the same server over HTTP (``--serve-artifacts``,
``mlflow-artifacts:/`` URIs), so the driver and every executor reach them through the one URL
they already have for tracking, with no shared disk or cloud credentials. For a team, swap the
SQLite file for a PostgreSQL or MySQL URI (``--backend-store-uri``) and the artefact folder for
an ``s3://`` bucket (``--artifacts-destination``): the clients do not change.

The tests start their server with :func:`start` and stop it with :func:`stop` (its process
group); ``make mlflow-server`` runs the same command in the foreground.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


@dataclass
class MlflowServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def command(store: Path, *, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The ``mlflow server`` command line for a store folder."""
    mlflow = Path(sys.executable).with_name("mlflow")
    return [
        str(mlflow),
        "server",
        "--backend-store-uri",
        f"sqlite:///{store.resolve()}/mlflow.db",
        "--artifacts-destination",
        str((store / "artifacts").resolve()),
        "--serve-artifacts",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def environment() -> dict[str, str]:
    """The server's environment: no tracking URI of its own, and no job runner.

    MLflow 3's server starts a pool of job consumers (huey, seven processes of ~250 MB each,
    polling) for its GenAI jobs at every start; tracking and the registry need none of them.
    """
    return {**os.environ, "MLFLOW_TRACKING_URI": "", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(store: Path, *, port: int, timeout_s: float = START_TIMEOUT_S) -> MlflowServer:
    """Starts the server on 127.0.0.1:``port``; returns once ``/health`` answers.

    Raises:
        RuntimeError: the server exited or missed the deadline; the message names its log.
    """
    store.mkdir(parents=True, exist_ok=True)
    log = store / "server.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        process = subprocess.Popen(
            command(store, port=port),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=environment(),
        )
    server = MlflowServer(url=url, process=process, log=log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}; see {log}")
        if healthy(url):
            return server
        time.sleep(0.5)
    stop(server)
    raise RuntimeError(f"mlflow server not healthy at {url} within {timeout_s:.0f}s; see {log}")


def stop(server: MlflowServer, *, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stops the server's process group (TERM, then KILL after ``timeout_s``)."""
    if server.process.poll() is not None:
        return
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=timeout_s)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="folder for the db and artefacts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    args.store.mkdir(parents=True, exist_ok=True)
    print(f"MLflow tracking server on http://{args.host}:{args.port} (store {args.store})")
    cmd = command(args.store, host=args.host, port=args.port)
    os.execve(cmd[0], cmd, environment())
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
