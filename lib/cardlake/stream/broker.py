"""A single-node Apache Kafka broker in KRaft mode on 127.0.0.1, run from Kafka's own jars.

The jars are resolved from Maven Central by ``mvn dependency:copy-dependencies`` on
``infra/kafka/pom.xml`` into a cache (``~/.cache/cardlake/kafka/<version>/libs`` by default,
``CARDLAKE_KAFKA_CACHE`` overrides the root). Nothing is downloaded by hand and no jar is
committed. ``make kafka-up`` / ``make kafka-down`` and the tests' session fixture use the same
:func:`start_broker`, so what the tests run is what a user runs.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cardlake.config import PROJECT_ROOT

KAFKA_VERSION = "4.1.1"  # keep in step with infra/kafka/pom.xml
POM = PROJECT_ROOT / "infra" / "kafka" / "pom.xml"
CACHE_VAR = "CARDLAKE_KAFKA_CACHE"
READY_SECONDS = 90.0
STOP_SECONDS = 20.0
_LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
"""
_LOG4J2 = """\
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
"""


class BrokerError(RuntimeError):
    """The broker could not be fetched, formatted or started; the message says why."""


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_VAR, Path.home() / ".cache" / "cardlake" / "kafka"))


def kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """The folder of Kafka's jars, resolving them from Maven Central on first use.

    Raises:
        BrokerError: Maven is missing or the resolution failed (its output is in the message).
    """
    libs = cache_root() / version / "libs"
    if (libs / f"kafka_2.13-{version}.jar").is_file():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "resolving Kafka's jars needs Maven: apt-get install maven "
            "(or run .ci/setup.d/30-kafka.sh)"
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    out = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-Dkafka.version={version}",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = (out.stdout + out.stderr)[-2000:]
        raise BrokerError(f"mvn could not resolve Kafka {version}: {tail}")
    try:  # another process may have won the race; either copy is complete
        staging.rename(libs)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return libs


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class Broker:
    """A running broker: its address, data folder, log and process group."""

    port: int
    controller_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, *, hard: bool = False) -> None:
        """Stops the broker's process group (SIGTERM, then SIGKILL after a deadline)."""
        pid = self.process.pid if self.process is not None else self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL if hard else signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while time.monotonic() < deadline and _alive(pid, self.process):
            time.sleep(0.1)
        if _alive(pid, self.process):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            if self.process is not None:
                self.process.wait(timeout=STOP_SECONDS)
        self.process = None
        self.pid = None

    def restart(self) -> None:
        """Starts the broker again on the same ports and data (after :meth:`stop`)."""
        self.stop()
        fresh = _launch(self.data_dir, self.port, self.controller_port, self.log_path)
        self.process, self.pid = fresh.process, fresh.pid
        wait_ready(self, deadline_s=READY_SECONDS)


def _alive(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _write_config(data_dir: Path, port: int, controller_port: int) -> Path:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir / "logs"),
        "num.partitions": "2",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "log.flush.interval.messages": "1",  # a kill -9 of the broker must not lose acks
    }
    path = data_dir / "server.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()), encoding="utf-8")
    (data_dir / "log4j.properties").write_text(_LOG4J, encoding="utf-8")
    (data_dir / "log4j2.properties").write_text(_LOG4J2, encoding="utf-8")
    return path


def _java(libs: Path, data_dir: Path) -> list[str]:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else (shutil.which("java") or "java")
    return [
        java,
        "-Xms128m",
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{data_dir / 'log4j.properties'}",
        f"-Dlog4j2.configurationFile={data_dir / 'log4j2.properties'}",
        "-cp",
        f"{libs}/*",
    ]


def _launch(data_dir: Path, port: int, controller_port: int, log_path: Path) -> Broker:
    libs = kafka_libs()
    config = data_dir / "server.properties"
    log = open(log_path, "ab")  # the child keeps its own descriptor
    process = subprocess.Popen(
        [*_java(libs, data_dir), "kafka.Kafka", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=data_dir,
    )
    log.close()
    (data_dir / "broker.pid").write_text(str(process.pid), encoding="utf-8")
    return Broker(
        port=port,
        controller_port=controller_port,
        data_dir=data_dir,
        log_path=log_path,
        process=process,
        pid=process.pid,
    )


def start_broker(
    data_dir: str | Path,
    *,
    port: int | None = None,
    controller_port: int | None = None,
    deadline_s: float = READY_SECONDS,
) -> Broker:
    """Formats ``data_dir`` (first time only) and starts a broker; returns once it serves.

    Args:
        data_dir: the broker's folder (config, log segments, ``broker.log``, ``broker.pid``).
        port: client port on 127.0.0.1 (a free one by default).
        controller_port: KRaft controller port (a free one by default).
        deadline_s: how long to wait for the broker to answer a metadata request.

    Raises:
        BrokerError: the jars could not be resolved, or the broker did not come up in time
            (the message holds the end of its log).
    """
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    controller_port = controller_port or free_port()
    config = _write_config(data, port, controller_port)
    libs = kafka_libs()
    log_path = data / "broker.log"
    if not (data / "logs" / "meta.properties").is_file():
        fmt = subprocess.run(
            # One token: an id that starts with "-" (one in 64) is otherwise read as an option.
            [
                *_java(libs, data),
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={_cluster_id()}",
                "-c",
                str(config),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=data,
        )
        if fmt.returncode != 0:
            raise BrokerError(f"kafka storage format failed: {(fmt.stdout + fmt.stderr)[-2000:]}")
    broker = _launch(data, port, controller_port, log_path)
    try:
        wait_ready(broker, deadline_s=deadline_s)
    except BrokerError:
        broker.stop(hard=True)
        raise
    return broker


def wait_ready(broker: Broker, *, deadline_s: float) -> None:
    """Polls the broker with metadata requests until it answers, its process dies, or time's up."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 0})
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if broker.process is not None and broker.process.poll() is not None:
            raise BrokerError(f"kafka exited with {broker.process.returncode}: {_tail(broker)}")
        try:
            meta = admin.list_topics(timeout=2)
            if meta.brokers:
                return
        except Exception:  # KafkaException while the listener is not up yet
            pass
        time.sleep(0.2)
    raise BrokerError(
        f"kafka did not answer on {broker.bootstrap} within {deadline_s:.0f} s: {_tail(broker)}"
    )


def _tail(broker: Broker, n: int = 3000) -> str:
    try:
        return broker.log_path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def create_topics(bootstrap: str, topics: dict[str, int], *, timeout_s: float = 30.0) -> None:
    """Creates ``{topic: partitions}`` where missing (replication factor 1)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    new = [
        NewTopic(t, num_partitions=p, replication_factor=1)
        for t, p in topics.items()
        if t not in existing
    ]
    if not new:
        return
    for topic, future in admin.create_topics(new, request_timeout=timeout_s).items():
        try:
            future.result()
        except Exception as exc:  # already created by a concurrent caller is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BrokerError(f"could not create topic {topic}: {exc}") from exc


def stop_from_pidfile(data_dir: str | Path) -> bool:
    """``make kafka-down``: stops the broker whose pid file is in ``data_dir``."""
    pidfile = Path(data_dir) / "broker.pid"
    if not pidfile.is_file():
        return False
    pid = int(pidfile.read_text().strip())
    Broker(
        port=0,
        controller_port=0,
        data_dir=Path(data_dir),
        log_path=Path(data_dir) / "broker.log",
        pid=pid,
    ).stop()
    pidfile.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m cardlake.stream.broker {fetch,up,down} [--dir D] [--port P]``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="cardlake.stream.broker")
    parser.add_argument("action", choices=("fetch", "up", "down"))
    parser.add_argument("--dir", default=str(PROJECT_ROOT / "lake" / "_kafka"))
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=9093)
    args = parser.parse_args(argv)
    try:
        if args.action == "fetch":
            print(f"kafka jars: {kafka_libs()}")
        elif args.action == "up":
            pidfile = Path(args.dir) / "broker.pid"
            if pidfile.is_file() and _alive(int(pidfile.read_text()), None):
                print(f"kafka already running (pid {pidfile.read_text().strip()}, {args.dir})")
                return 0
            broker = start_broker(args.dir, port=args.port, controller_port=args.controller_port)
            print(
                f"kafka {KAFKA_VERSION} up on {broker.bootstrap} (pid {broker.pid}, "
                f"log {broker.log_path}); `make kafka-down` stops it"
            )
        else:
            print("kafka stopped" if stop_from_pidfile(args.dir) else "kafka was not running")
    except BrokerError as exc:
        print(f"cardlake: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
