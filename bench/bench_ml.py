"""Where the ML stage's time goes, model by model: Spark's event log summed per model.

    python bench/bench_ml.py --lake-root /tmp/h1/lake --landing-root /tmp/h1/data/landing \
        --truth-root /tmp/h1/data/truth [--fresh-registry] [--top 10] [-- --set ml.models_at_once=1]
    python bench/bench_ml.py --event-log FILE --run-log FILE      # an earlier run

Runs ``cardlake run --only ml`` with the event log on (``profile_run.run_profiled``: a copy of
``conf/`` with the event log's settings, the log under ``<lake>/_ops/eventlog``).
``--fresh-registry`` first deletes the lake's MLflow store (``_ops/mlflow.db``
and ``_ops/mlartifacts``), as in a ``make run`` from nothing, where every model is promoted and
no champion is read back; without it each model meets the champion already registered there.

Each job carries its model's name (the ``cardlake.model`` local property the ML stage sets), so
for each model: its wall time (from the run's log), the Spark jobs it ran, their summed time
(models and grid points run at once, so job times overlap), the task-seconds (cores kept busy),
the tasks' CPU seconds (executor CPU, which a loaded machine stretches less than wall time)
and the call sites or JVM operations with the most job time.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from profile_run import _events, _site, run_profiled

ROOT = Path(__file__).resolve().parents[1]
MODEL_PROPERTY = "cardlake.model"  # cardlake.ml.job.MODEL_PROPERTY
DONE_LINE = re.compile(r"INFO cardlake\.ml: ml (\w+) done in ([\d.]+)s")
STAGE_DONE = re.compile(r"INFO cardlake\.pipeline: stage ml done in ([\d.]+)s")


def run(lake_root: Path, extra: list[str], *, fresh_registry: bool) -> tuple[Path, Path]:
    """Runs the ML stage with the event log on (:func:`profile_run.run_profiled`); returns
    (event log file, run log)."""
    if fresh_registry:
        (lake_root / "_ops" / "mlflow.db").unlink(missing_ok=True)
        shutil.rmtree(lake_root / "_ops" / "mlartifacts", ignore_errors=True)
    return run_profiled("local", lake_root, "ml", extra)


def summarise(event_log: Path, run_log: Path, top: int) -> str:
    """Per model: wall, jobs, job time, task time; then each model's heaviest call sites."""
    text = run_log.read_text()
    walls = {m.group(1): float(m.group(2)) for m in DONE_LINE.finditer(text)}
    stage = STAGE_DONE.search(text)
    jobs: dict[int, list] = {}
    stage_model: dict[int, str] = {}
    task_seconds: dict[str, float] = collections.defaultdict(float)
    cpu_seconds: dict[str, float] = collections.defaultdict(float)
    for e in _events(event_log):
        kind = e.get("Event")
        if kind == "SparkListenerJobStart":
            model = (e.get("Properties") or {}).get(MODEL_PROPERTY) or "(none)"
            jobs[e["Job ID"]] = [e["Submission Time"] / 1000, None, _site(e), model]
            for stage_id in e.get("Stage IDs", []):
                stage_model[stage_id] = model
        elif kind == "SparkListenerJobEnd" and e["Job ID"] in jobs:
            jobs[e["Job ID"]][1] = e["Completion Time"] / 1000
        elif kind == "SparkListenerTaskEnd":
            info = e["Task Info"]
            model = stage_model.get(e["Stage ID"], "(none)")
            task_seconds[model] += (info["Finish Time"] - info["Launch Time"]) / 1000
            work = e.get("Task Metrics") or {}
            cpu_ns = work.get("Executor CPU Time", 0) + work.get("Executor Deserialize CPU Time", 0)
            cpu_seconds[model] += cpu_ns / 1e9
    by_model: dict[str, list[list]] = collections.defaultdict(list)
    for job in jobs.values():
        if job[1] is not None:
            by_model[job[3]].append(job)
    out = []
    if stage:
        out.append(f"ml stage wall {float(stage.group(1)):.1f}s")
    out.append(
        f"{'model':14} {'wall':>7} {'jobs':>6} {'job time':>9} {'task time':>10} {'task CPU':>9}"
    )
    for model in sorted(by_model, key=lambda m: -walls.get(m, 0.0)):
        inside = by_model[model]
        out.append(
            f"{model:14} {walls.get(model, float('nan')):6.1f}s {len(inside):6d}"
            f" {sum(j[1] - j[0] for j in inside):8.1f}s {task_seconds[model]:9.1f}s"
            f" {cpu_seconds[model]:8.1f}s"
        )
    out.append(
        f"{'all':14} {'':7} {sum(len(v) for v in by_model.values()):6d} {'':9}"
        f" {sum(task_seconds.values()):9.1f}s {sum(cpu_seconds.values()):8.1f}s"
    )
    for model in sorted(by_model, key=lambda m: -walls.get(m, 0.0)):
        sites: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
        for start, end, site, _ in by_model[model]:
            sites[site][0] += 1
            sites[site][1] += end - start
        out.append(f"\n{model}: the call sites with the most job time")
        ranked = sorted(sites.items(), key=lambda kv: -kv[1][1])[:top]
        out += [f"  {t:7.1f}s {int(n):5d} jobs  {site}" for site, (n, t) in ranked]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake-root", type=Path)
    parser.add_argument("--landing-root")
    parser.add_argument("--truth-root")
    parser.add_argument("--fresh-registry", action="store_true")
    parser.add_argument("--top", type=int, default=10, help="call sites shown per model")
    parser.add_argument("--event-log", type=Path, help="summarise this event log instead")
    parser.add_argument("--run-log", type=Path, help="the run log of --event-log's run")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.event_log:
        if not args.run_log:
            parser.error("--event-log needs --run-log (the models' times come from it)")
        event_log, run_log = args.event_log, args.run_log
    else:
        if not args.lake_root:
            parser.error("--lake-root is needed to run the stage")
        for flag, value in (
            ("--landing-root", args.landing_root),
            ("--truth-root", args.truth_root),
        ):
            if value:
                extra = [flag, value, *extra]
        event_log, run_log = run(args.lake_root, extra, fresh_registry=args.fresh_registry)
    print(f"event log {event_log}\nrun log {run_log}")
    print(summarise(event_log, run_log, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
