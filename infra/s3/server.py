"""A local S3-compatible server (moto's, from PyPI) on loopback, and Spark's S3A settings for it.

    python infra/s3/server.py up   [--state DIR] [--port 9000] [--bucket cardlake]
    python infra/s3/server.py down [--state DIR]

For development and tests only: moto keeps objects in memory and accepts any credentials. The
lake then lives at ``s3a://<bucket>/<prefix>``; :func:`s3a_settings` gives the Spark settings
that point Hadoop's S3A connector (``org.apache.hadoop:hadoop-aws`` at the Hadoop version inside
pyspark, :func:`hadoop_aws_package`) at it. Against real S3 only the endpoint and credentials
settings go away.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_STATE = Path(os.environ.get("CARDLAKE_S3_STATE", "/tmp/cardlake-s3"))
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
REGION = "us-east-1"
# moto accepts any key; these only satisfy clients that insist on having one.
TEST_ACCESS_KEY = "cardlake-test"
TEST_SECRET_KEY = "cardlake-test-secret"  # not a secret: the local fake server takes any


@dataclass
class S3Server:
    endpoint: str
    pid: int
    log: str


def hadoop_version() -> str:
    """The Hadoop version of the jars inside the installed pyspark."""
    from cardlake.spark import hadoop_version as inside_pyspark

    return inside_pyspark()


def hadoop_aws_package() -> str:
    """Maven coordinates of Hadoop's S3A connector matching pyspark's Hadoop."""
    from cardlake.spark import s3a_coordinates

    return s3a_coordinates()


def s3a_settings(endpoint: str | None = None) -> dict[str, str]:
    """Spark settings for S3A; with ``endpoint`` also those for a local S3-compatible server.

    Credentials come from the environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
    then the instance profile), never from a settings file.
    """
    settings = {
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        # Delta commits a single cluster's writes safely with its default S3 log store; see the
        # README for several clusters.
        "spark.hadoop.fs.s3a.fast.upload": "true",
    }
    if endpoint:
        settings.update(
            {
                "spark.hadoop.fs.s3a.endpoint": endpoint,
                "spark.hadoop.fs.s3a.endpoint.region": REGION,
                "spark.hadoop.fs.s3a.path.style.access": "true",
                "spark.hadoop.fs.s3a.connection.ssl.enabled": endpoint.startswith("https"),
                "spark.hadoop.fs.s3a.change.detection.mode": "none",
                "spark.hadoop.fs.s3a.attempts.maximum": "3",
                "spark.hadoop.fs.s3a.retry.limit": "3",
            }
        )
    return {k: str(v).lower() if isinstance(v, bool) else v for k, v in settings.items()}


def client_env(endpoint: str) -> dict[str, str]:
    """Environment for clients of the local server (Spark's S3A, delta-rs, boto3)."""
    return {
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


def _healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(state_dir: Path, *, port: int, timeout_s: float = START_TIMEOUT_S) -> S3Server:
    """Starts moto's server on 127.0.0.1:``port`` in its own process group; waits until it answers.

    Raises:
        RuntimeError: it exited or missed the deadline; the message names its log.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "s3.log"
    endpoint = f"http://127.0.0.1:{port}"
    moto = Path(sys.executable).with_name("moto_server")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = S3Server(endpoint=endpoint, pid=process.pid, log=str(log))
    (state_dir / "state.json").write_text(json.dumps(asdict(server)))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"S3 server exited with {process.returncode}; see {log}")
        if _healthy(endpoint):
            return server
        time.sleep(0.3)
    stop(state_dir)
    raise RuntimeError(f"S3 server not answering at {endpoint} within {timeout_s:.0f}s; see {log}")


def stop(state_dir: Path, *, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stops the server recorded in ``state_dir`` (its process group: TERM, then KILL)."""
    path = state_dir / "state.json"
    if not path.exists():
        return
    pid = int(json.loads(path.read_text())["pid"])
    try:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                reaped, _ = os.waitpid(pid, os.WNOHANG)
                if reaped == pid:
                    break
            except ChildProcessError:
                os.kill(pid, 0)  # not our child: raises ProcessLookupError once it is gone
            time.sleep(0.2)
        else:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    path.unlink()


def create_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=TEST_ACCESS_KEY,
        aws_secret_access_key=TEST_SECRET_KEY,
    )
    client.create_bucket(Bucket=bucket)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--bucket", default="cardlake")
    args = parser.parse_args(argv)
    if args.action == "down":
        stop(args.state)
        print("S3 server stopped")
        return 0
    server = start(args.state, port=args.port)
    create_bucket(server.endpoint, args.bucket)
    print(f"S3 at {server.endpoint}: lake root s3a://{args.bucket}/lake; Spark settings:")
    for key, value in s3a_settings(server.endpoint).items():
        print(f"  --conf {key}={value}")
    print(f"  --packages {hadoop_aws_package()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
