"""The matcher on person files built unlike the project's generator (issue 17).

    python bench/bench_er_external.py --people 2000
    python bench/bench_er_external.py --people 5000 --profiles light heavy sparse
    python bench/bench_er_external.py --people 2000 --seed 7 11

For every noise profile of ``tests/er/people_maker.py`` (Faker names and addresses in six
locales, keyboard typos, swapped names, nicknames, day/month swaps, moves, missing fields), a
two-file link (each person once in each file) and a one-file dedupe (clusters of 1 to 5) are
made, resolved with the default :class:`ResolverSettings` (nothing chosen per dataset) and
scored against the truth. Printed per dataset: records, pairwise precision, recall and F1,
B-cubed F1, the link threshold, the seconds taken, the pairs the prediction blocking rules
choose and the share of true pairs they reach (a pair none reaches is never scored).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.er.people_maker: the data maker the tests use too

from tests.er.people_maker import (  # noqa: E402
    PROFILES,
    blocking_reach,
    make_dedupe_file,
    make_link_pair,
    resolve_frames,
)

from cardlake.config import load_config  # noqa: E402
from cardlake.er import (  # noqa: E402
    ModelSettings,
    ResolverSettings,
    splink_spark_conf,
)
from cardlake.spark import build_session  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--people", type=int, default=2000, help="people per dataset (a link pair has 2x records)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=[7],
        help="one dataset per seed and profile: figures that hold at one seed only are luck",
    )
    parser.add_argument("--profiles", nargs="+", default=sorted(PROFILES), choices=sorted(PROFILES))
    parser.add_argument(
        "--shapes", nargs="+", default=["link", "dedupe"], choices=["link", "dedupe"]
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("py4j", "splink"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = load_config("local", overrides={"spark.conf": splink_spark_conf()})
    spark = build_session(cfg)
    settings = ResolverSettings(model=ModelSettings())
    try:
        for seed in args.seed:
            for name in args.profiles:
                for shape in args.shapes:
                    _run(spark, settings, shape=shape, name=name, people=args.people, seed=seed)
    finally:
        spark.stop()
    return 0


def _run(
    spark: Any, settings: ResolverSettings, *, shape: str, name: str, people: int, seed: int
) -> None:
    """Makes one dataset, resolves it and prints its figures on one line, its seed first."""
    profile = PROFILES[name]
    frames = (
        list(make_link_pair(people, profile=profile, seed=seed))
        if shape == "link"
        else [make_dedupe_file(people, profile=profile, seed=seed)]
    )
    candidates, true_pairs, reached = blocking_reach(spark, frames)
    t0 = time.perf_counter()
    m, res = resolve_frames(spark, frames, settings=settings)
    print(
        f"seed {seed} {shape:6s} {name:6s}: {m.records} records  precision "
        f"{m.pairwise_precision:.4f} recall {m.pairwise_recall:.4f} "
        f"F1 {m.pairwise_f1:.4f}  B-cubed F1 {m.bcubed_f1:.4f}  threshold "
        f"{res.threshold_match_probability:.6f}  "
        f"{time.perf_counter() - t0:.0f}s  candidate pairs {candidates}, true pairs reached "
        f"{reached / max(true_pairs, 1):.4f}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
