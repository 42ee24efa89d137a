"""A lake on object storage: a local S3-compatible server (moto's) on loopback, Hadoop's S3A
connector for Spark, and delta-rs's own S3 support.

The table-layer contract runs on ``s3a://`` in a pytest of its own (Spark loads the S3A jars only
at start-up, so the suite's session cannot take them): every engine that commits to object
stores passes it there; delta-rs's engine commits local folders only and says so as a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from tests.infra.services import ROOT, free_port, load_infra
from tests.lake_fixture import BuiltLake

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "cardlake"
# Seen passing in 17 min on the shared 2-core machine under a load average of ~15 (its own
# Spark session, every contract case through moto); an idle machine takes a fraction of that.
CONTRACT_TIMEOUT_S = 1800


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    s3 = load_infra("s3/server.py")
    state = tmp_path_factory.mktemp("s3")
    server = s3.start(state, port=free_port())
    try:
        s3.create_bucket(server.endpoint, BUCKET)
        yield server
    finally:
        s3.stop(state)


def test_the_s3a_connector_matches_the_hadoop_inside_pyspark() -> None:
    import pyspark

    s3 = load_infra("s3/server.py")
    # The version read off pyspark's own jar files, not from the code under test.
    jars = Path(pyspark.__file__).parent / "jars"
    (api,) = jars.glob("hadoop-client-api-*.jar")
    version = api.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    assert (jars / f"hadoop-client-runtime-{version}.jar").is_file()
    assert s3.hadoop_version() == version
    assert s3.hadoop_aws_package() == f"org.apache.hadoop:hadoop-aws:{version}"


def test_delta_rs_writes_and_reads_a_table_on_s3(s3_server: Any) -> None:
    from deltalake import DeltaTable, write_deltalake

    s3 = load_infra("s3/server.py")
    options = {**s3.client_env(s3_server.endpoint), "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    uri = f"s3://{BUCKET}/delta-rs/accounts"
    data = pa.table({"id": [1, 2, 3], "owner": ["a", None, "c"]})
    write_deltalake(uri, data, storage_options=options)
    write_deltalake(
        uri, pa.table({"id": [4], "owner": ["d"]}), mode="append", storage_options=options
    )
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 1
    rows = sorted(table.to_pyarrow_table().to_pylist(), key=lambda r: r["id"])
    assert rows == [
        {"id": 1, "owner": "a"},
        {"id": 2, "owner": None},
        {"id": 3, "owner": "c"},
        {"id": 4, "owner": "d"},
    ]


def _s3_environment(tmp_path: Path, endpoint: str, **sections: dict[str, Any]) -> dict[str, str]:
    """The environment of a process whose test settings reach the S3 server through S3A:
    ``conf/`` copied under ``tmp_path`` with the S3A settings and ``sections`` over the test
    overlay's own (key by key)."""
    s3 = load_infra("s3/server.py")
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    overlay = yaml.safe_load((conf / "test.yaml").read_text()) or {}
    spark_conf = {**s3.s3a_settings(endpoint), "spark.jars.packages": s3.hadoop_aws_package()}
    overlay["spark"] = {**overlay.get("spark", {}), "conf": spark_conf}
    for name, values in sections.items():
        overlay[name] = {**overlay.get(name, {}), **values}
    (conf / "test.yaml").write_text(yaml.safe_dump(overlay))
    return {**os.environ, **s3.client_env(endpoint), "CARDLAKE_CONF_DIR": str(conf)}


def _in_a_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CONTRACT_TIMEOUT_S,
        check=False,
    )


# Heavy: the whole contract in a second pytest with the S3A jars, about 5 minutes; `make
# test-heavy` runs it. The delta-rs test above keeps a lake on the S3 server in `make test`.
@pytest.mark.heavy
def test_table_contract_passes_on_s3a(s3_server: Any, tmp_path: Path) -> None:
    report = tmp_path / "contract.xml"
    env = {
        **_s3_environment(tmp_path, s3_server.endpoint),
        "CARDLAKE_TEST_LAKE_URI": f"s3a://{BUCKET}/contract",
    }
    done = _in_a_process(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/tables/test_contract.py",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            f"--basetemp={tmp_path / 'pt'}",
        ],
        env,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    cases = ET.parse(report).getroot().iter("testcase")
    outcome: dict[str, list[str]] = {"passed": [], "skipped": []}
    for case in cases:
        kind = "skipped" if case.find("skipped") is not None else "passed"
        outcome[kind].append(case.get("name", ""))
    ran_on_spark = [n for n in outcome["passed"] if "delta-spark" in n]
    assert len(ran_on_spark) >= 20, outcome
    assert all("delta-rs" in n for n in outcome["skipped"]), outcome["skipped"]

    import boto3

    s3 = load_infra("s3/server.py")
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        region_name=s3.REGION,
        aws_access_key_id=s3.TEST_ACCESS_KEY,
        aws_secret_access_key=s3.TEST_SECRET_KEY,
    )
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="contract/"
        )
        for o in page.get("Contents", [])
    ]
    assert any("/_delta_log/00000000000000000000.json" in k for k in keys), keys[:20]
    assert any(k.endswith(".parquet") for k in keys), keys[:20]


def test_the_run_lock_of_an_s3_lake_is_one_conditional_write(
    s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from cardlake.errors import LakeLocked
    from cardlake.lock import LakeLock

    s3 = load_infra("s3/server.py")
    for name, value in s3.client_env(s3_server.endpoint).items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3")
    lake = f"s3a://{BUCKET}/locked/lake"
    key = "locked/lake/_ops/pipeline.lock"

    first = LakeLock(lake, command="run --month 2025-06").acquire()
    held = client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    assert '"command": "run --month 2025-06"' in held
    # A second run on this host cannot tell whether the holder lives elsewhere: it waits, then
    # gives up naming the holder, and never deletes the lock.
    with pytest.raises(LakeLocked, match=r"another run holds the lake: pid \d+ on .*2025-06"):
        LakeLock(lake, command="second", wait=0.3, poll=0.1).acquire()
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode() == held

    first.release()
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="locked/")
    assert listed.get("KeyCount", 0) == 0
    with LakeLock(lake, command="second"):
        now = client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        assert '"command": "second"' in now
    # Another lake in the same bucket has a lock of its own.
    with (
        LakeLock(f"s3a://{BUCKET}/locked/lake", command="third"),
        LakeLock(f"s3://{BUCKET}/other", command="fourth"),
    ):
        pass


def _upload(endpoint: str, folder: Path, prefix: str) -> None:
    import boto3

    env = load_infra("s3/server.py").client_env(endpoint)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(folder)}"
        client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())


def _landing_tree(root: Path) -> None:
    # Two months of one source, a file still being written (dot name), a stray folder deeper
    # than a month's, and another source beside it.
    files = {
        "cards/2025-01/cards_2025-01-01.csv": b"card_id,pan\n1,4111111111111111\n\n2,x\n",
        "cards/2025-01/.cards_2025-01-02.csv": b"partial",
        "cards/2025-01/old/cards_2024.csv": b"card_id\n9\n",
        "cards/2025-02/cards_2025-02-01.csv": b"card_id,pan\n3,5500000000000004\n",
        "cards/2025-02/empty.csv": b"",
        "crm/2025-01/crm.json": b'{"id": 1}\n',
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_landing_files_on_s3_are_found_and_read_as_in_a_local_folder(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    from cardlake.bronze.ingest import discover

    s3 = load_infra("s3/server.py")
    for name, value in s3.client_env(s3_server.endpoint).items():
        monkeypatch.setenv(name, value)
    local = tmp_path / "landing"
    _landing_tree(local)
    _upload(s3_server.endpoint, local, "landing")

    def seen(root: str, months: list[str] | None = None) -> list[tuple[Any, ...]]:
        return [
            (f.rel_path, f.abs_path.removeprefix(root), f.size, f.digest, f.lines, f.not_text)
            for f in discover(root, "cards", months, key=b"k")
        ]

    on_s3 = seen(f"s3a://{BUCKET}/landing")
    assert [f[0] for f in on_s3] == [
        "cards/2025-01/cards_2025-01-01.csv",
        "cards/2025-02/cards_2025-02-01.csv",
        "cards/2025-02/empty.csv",
    ]
    assert on_s3[0][1:] == ("/cards/2025-01/cards_2025-01-01.csv", 36, on_s3[0][3], 3, None)
    assert on_s3 == seen(str(local))
    assert seen(f"s3a://{BUCKET}/landing", ["2025-02"]) == seen(str(local), ["2025-02"])
    assert discover(f"s3a://{BUCKET}/landing", "nothing-here", key=b"k") == []


def test_a_lake_on_another_object_store_is_refused_by_the_lock() -> None:
    from cardlake.errors import LakeLocked
    from cardlake.lock import LakeLock

    with pytest.raises(LakeLocked, match="gs://bucket/lake: the run lock needs"):
        LakeLock("gs://bucket/lake", command="run").acquire()


# Heavy: the built lake (minutes) and bronze, silver and gold again on S3 (about 13 minutes at
# load 15, no slower than on a local folder: the store is moto's memory).
FINGERPRINTS = """
import json, sys
from cardlake.config import load_config
from cardlake.spark import build_session
from cardlake.tables import Tables
from tests.infra.services import table_fingerprint

s3_cfg = load_config("test")
spark = build_session(s3_cfg)
local_cfg = load_config("test", overrides={"paths.lake_root": sys.argv[1]})
# The gold tables the S3 run wrote (the models' tables in gold are not its stages'), each on
# both sides.
on_s3 = Tables.from_config(spark, s3_cfg)
names = [n for n in on_s3.register_sql() if n.startswith("gold.")]
out = {}
for side, cfg in (("s3", s3_cfg), ("local", local_cfg)):
    tables = Tables.from_config(spark, cfg)
    out[side] = {n: list(table_fingerprint(tables.read(n))) for n in names}
print("FINGERPRINTS " + json.dumps(out))
"""


@pytest.mark.heavy
def test_bronze_to_gold_on_an_s3a_lake_equals_the_local_run(
    s3_server: Any, built_lake: BuiltLake, tmp_path: Path
) -> None:
    # The landing zone on the S3 server too: the whole chain reads and writes object storage.
    _upload(s3_server.endpoint, built_lake.root / "landing", "landing")
    env = _s3_environment(
        tmp_path,
        s3_server.endpoint,
        tables={"engine": "delta-spark"},
        paths={
            "lake_root": f"s3a://{BUCKET}/pipeline",
            "landing_root": f"s3a://{BUCKET}/landing",
            "truth_root": str(built_lake.truth_root),
        },
        synth=dict(built_lake.world),
        quality={"stage_checks": True},
        ml={
            "tracking": {
                "uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                "artifact_root": str(tmp_path / "mlartifacts"),
            }
        },
    )
    run = _in_a_process(
        [
            sys.executable,
            "-m",
            "cardlake.cli",
            "run",
            "--env",
            "test",
            "--only",
            "bronze,silver,gold",
        ],
        env,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "lake s3a://cardlake/pipeline" in run.stdout
    assert not (ROOT / "s3a:").exists()  # nothing written to a local folder named after the URI
    done = _in_a_process(
        [sys.executable, "-c", FINGERPRINTS, str(built_lake.lake_root)],
        env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("FINGERPRINTS "))
    found = json.loads(line.removeprefix("FINGERPRINTS "))
    assert {"gold.dim_customer", "gold.fact_transactions"} <= set(found["s3"])
    assert all(rows > 0 for rows, _ in found["s3"].values())
    assert found["s3"] == found["local"]
