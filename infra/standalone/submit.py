"""spark-submit a Cardlake job to a standalone master, shipped the way a cluster needs it.

    python infra/standalone/submit.py [--master spark://127.0.0.1:7077] [--python-env shared]
        jobs/run_pipeline.py --env cluster --month 2025-06

What travels with the job:

- **the project as a wheel**: built from ``pyproject.toml`` into ``--dist`` (``pip wheel
  --no-deps``) and shipped with ``--py-files`` under a ``.zip`` name (PySpark puts only ``.zip``,
  ``.egg`` and ``.jar`` files of ``--py-files`` on the executors' Python path, and a wheel is a
  zip), so executors import exactly the submitted code, ahead of any installed copy;
- **the Python environment**: ``shared`` (default here) points executors at an interpreter that
  exists at the same path on every node (``spark.pyspark.python``; Spark's documented option for
  a shared file system or identical node images: this machine's ``.venv``). ``packed`` ships a
  relocatable environment (``--packed-env env.tar.gz``, built by :func:`pack_environment`:
  the wheel and its dependencies in a fresh venv, packed by ``venv-pack``) with ``--archives
  env.tar.gz#environment`` and ``spark.pyspark.python=./environment/bin/python``, Spark's
  documented recipe for nodes that have no Python packages of their own (they need the same
  base Python at the same path: a venv links to its interpreter);
- **jars by Maven coordinates**: the Delta connector for this pyspark line
  (:func:`delta_package`) through ``--packages``; Splink's similarity UDF jar is not published to
  Maven Central, it ships inside the ``splink`` wheel and goes with ``--jars``;
- **the Delta session extension and catalog**, so ``--env cluster`` (engine ``delta-spark``)
  finds the connector loaded;
- for an ``s3a://`` lake (``$CARDLAKE_LAKE_ROOT``), Hadoop's S3A connector
  (``org.apache.hadoop:hadoop-aws`` at the Hadoop version inside pyspark) and its settings;
  ``$CARDLAKE_S3_ENDPOINT`` points it at an S3-compatible server other than AWS.

The driver runs here (client mode) and reads ``conf/`` and ``sql/`` from this checkout
(``CARDLAKE_HOME``), since settings are files next to the code, not inside the wheel.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MASTER = os.environ.get("SPARK_MASTER", "spark://127.0.0.1:7077")
DEFAULT_DIST = Path(os.environ.get("CARDLAKE_DIST", "/tmp/cardlake-dist"))
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def delta_package() -> tuple[str, str]:
    """The Delta connector's Maven coordinates and the exclusions, as the session module pins them.

    ``$CARDLAKE_DELTA_PACKAGE`` overrides the coordinates (a mirror's build, say).
    """
    from cardlake.spark import DELTA_EXCLUDES, delta_coordinates

    return (
        os.environ.get("CARDLAKE_DELTA_PACKAGE") or delta_coordinates(),
        ",".join(DELTA_EXCLUDES),
    )


def _s3_module() -> Any:
    # infra/s3/server.py is a script beside this one, not a package.
    path = ROOT / "infra" / "s3" / "server.py"
    spec = importlib.util.spec_from_file_location("cardlake_infra_s3", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def splink_jar() -> str:
    from splink.backends.spark import similarity_jar_location

    return str(similarity_jar_location())


# Jars --packages resolves for the Delta connector (into the Ivy folder's jars/), by file prefix.
DELTA_JAR_PREFIXES = ("io.delta_", "io.unitycatalog_", "org.roaringbitmap_")


def shared_executor_classpath(ivy: str) -> str:
    """The Delta connector's and Splink's jars as local paths for the executors' class path.

    Jars that arrive with ``--packages`` load in the executors' child class loader, where Java
    cannot rebuild a Scala lambda of Delta's write path (``ClassCastException: cannot assign
    instance of java.lang.invoke.SerializedLambda to field ScalaUDF.f``, delta-io/delta#1419).
    Where the nodes share the driver's paths (``--python-env shared``), the same jars go on the
    executors' own class path. Only jars already resolved into ``ivy`` are listed: the first
    submit on a fresh cache resolves them; the next finds them.
    """
    jars = sorted(
        str(p) for p in (Path(ivy) / "jars").glob("*.jar") if p.name.startswith(DELTA_JAR_PREFIXES)
    )
    return os.pathsep.join([*jars, splink_jar()])


def build_wheel(dist: Path) -> Path:
    """Builds the project's wheel (no dependencies) into ``dist``; returns its path.

    A copy under a ``.zip`` name stands beside it (:func:`importable`), for ``--py-files``.
    """
    dist.mkdir(parents=True, exist_ok=True)
    for old in [*dist.glob("cardlake-*.whl"), *dist.glob("cardlake-*.zip")]:
        old.unlink()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
    )
    wheels = sorted(dist.glob("cardlake-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one cardlake wheel in {dist}, found {wheels}")
    shutil.copyfile(wheels[0], importable(wheels[0]))
    return wheels[0]


def importable(wheel: Path) -> Path:
    """The wheel's copy that ``--py-files`` puts on the executors' Python path (a ``.zip``)."""
    return wheel.with_suffix(".zip")


def pack_environment(wheel: Path, out: Path, *, dependencies: bool = True) -> Path:
    """A relocatable Python environment for the executors: ``wheel`` (with its dependencies,
    unless ``dependencies`` is false) installed into a fresh venv, packed by ``venv-pack``.

    The venv links to this interpreter's base Python: every node needs that Python at the same
    path (venv-pack's documented limit; a conda environment packed by conda-pack lifts it).
    """
    import venv_pack

    with tempfile.TemporaryDirectory(prefix="cardlake-env-") as work:
        env = Path(work) / "env"
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        pip += ["--disable-pip-version-check", *([] if dependencies else ["--no-deps"])]
        constraints = ROOT / "constraints.txt"  # the versions the driver's .venv was tested with
        if constraints.exists():
            pip += ["-c", str(constraints)]
        subprocess.run([*pip, str(wheel)], check=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        venv_pack.pack(prefix=str(env), output=str(out), verbose=False)
    return out


def submit_command(
    job: str,
    job_args: list[str],
    *,
    master: str,
    wheel: Path,
    python_env: str = "shared",
    packed_env: Path | None = None,
    executor_memory: str = "512m",
    executor_cores: int = 1,
    max_cores: int | None = None,
    driver_memory: str = "1g",
    conf: dict[str, str] | None = None,
) -> list[str]:
    """The ``spark-submit`` command line for ``job`` (a path under ``jobs/``)."""
    from cardlake.spark import ivy_dir

    packages, excludes = delta_package()
    lake_root = os.environ.get("CARDLAKE_LAKE_ROOT", "")
    if lake_root.startswith("s3a://"):  # Hadoop's S3A connector, at pyspark's Hadoop version
        s3 = _s3_module()
        packages = f"{packages},{s3.hadoop_aws_package()}"
        conf = {**s3.s3a_settings(os.environ.get("CARDLAKE_S3_ENDPOINT")), **(conf or {})}
    settings = {
        "spark.jars.ivy": ivy_dir(),
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.executor.memory": executor_memory,
        "spark.executor.cores": str(executor_cores),
        "spark.driver.host": "127.0.0.1" if "127.0.0.1" in master else "",
        "spark.ui.showConsoleProgress": "false",
    }
    if max_cores:
        settings["spark.cores.max"] = str(max_cores)
    command = [
        str(spark_home() / "bin" / "spark-submit"),
        "--master",
        master,
        "--deploy-mode",
        "client",
        "--name",
        f"cardlake-{Path(job).stem}",
        "--driver-memory",
        driver_memory,
        "--packages",
        packages,
        "--exclude-packages",
        excludes,
        "--jars",
        splink_jar(),
        "--py-files",
        str(importable(wheel)),
    ]
    if python_env == "packed":
        if packed_env is None:
            raise ValueError(
                "--python-env packed needs --packed-env <archive from pack_environment>"
            )
        command += ["--archives", f"{packed_env}#environment"]
        settings["spark.pyspark.python"] = "./environment/bin/python"
    elif python_env == "shared":
        settings["spark.pyspark.python"] = sys.executable
    else:
        raise ValueError(f"unknown --python-env {python_env!r}: shared or packed")
    settings["spark.pyspark.driver.python"] = sys.executable
    # Both: Python travels in the archive, the JVM's connector jars do not (see the function).
    settings["spark.executor.extraClassPath"] = shared_executor_classpath(ivy_dir())
    for key, value in {**settings, **(conf or {})}.items():
        if value:
            command += ["--conf", f"{key}={value}"]
    return [*command, str(ROOT / job), *job_args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default=DEFAULT_MASTER)
    parser.add_argument("--dist", type=Path, default=DEFAULT_DIST, help="where the wheel is built")
    parser.add_argument("--python-env", choices=["shared", "packed"], default="shared")
    parser.add_argument("--packed-env", type=Path, help="the packed environment (packed mode)")
    parser.add_argument(
        "--repack", action="store_true", help="packed mode: rebuild --packed-env even if it exists"
    )
    parser.add_argument("--executor-memory", default="512m")
    parser.add_argument("--executor-cores", type=int, default=1)
    parser.add_argument("--max-cores", type=int)
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--conf", action="append", default=[], help="extra key=value")
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    parser.add_argument("job", help="the job file, e.g. jobs/run_pipeline.py")
    parser.add_argument("job_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.conf)
    wheel = args.dist / "cardlake-0.0-py3-none-any.whl" if args.dry_run else build_wheel(args.dist)
    packed = args.python_env == "packed" and args.packed_env is not None and not args.dry_run
    if packed and (args.repack or not args.packed_env.is_file()):
        # The project's code travels in the wheel at every submit; the environment holds its
        # dependencies, so one built once serves until they change (then --repack).
        print(f"packing the executors' Python environment into {args.packed_env}", file=sys.stderr)
        pack_environment(wheel, args.packed_env)
    command = submit_command(
        args.job,
        args.job_args,
        master=args.master,
        wheel=wheel,
        python_env=args.python_env,
        packed_env=args.packed_env,
        executor_memory=args.executor_memory,
        executor_cores=args.executor_cores,
        max_cores=args.max_cores,
        driver_memory=args.driver_memory,
        conf=extra,
    )
    if args.dry_run:
        print(shlex.join(command))
        return 0
    env = dict(os.environ)
    env.setdefault("CARDLAKE_HOME", str(ROOT))  # conf/ and sql/ for the driver
    env.setdefault("CARDLAKE_CONF_DIR", str(ROOT / "conf"))
    env["PYSPARK_PYTHON"] = sys.executable
    return subprocess.run(command, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
