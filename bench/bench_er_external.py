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
``--explain-misses`` adds, per dataset, what the true pairs left apart share and how many
non-matching pairs share as much (whether the evidence to link them exists at all).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from functools import reduce
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.er.people_maker: the data maker the tests use too

from tests.er.people_maker import (  # noqa: E402
    PROFILES,
    blocking_reach,
    make_dedupe_file,
    make_link_pair,
    person_records,
    resolve_frames,
)

from cardlake.config import load_config  # noqa: E402
from cardlake.er import (  # noqa: E402
    ModelSettings,
    ResolverSettings,
    splink_spark_conf,
)
from cardlake.spark import build_logged_session  # noqa: E402


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
    parser.add_argument(
        "--explain-misses",
        action="store_true",
        help="for the true pairs left apart: what they share, and how many non-matches share it",
    )
    args = parser.parse_args(argv)
    cfg = load_config("local", overrides={"spark.conf": splink_spark_conf()})
    spark = build_logged_session(cfg, command="bench-er-external", console_level=logging.INFO)
    settings = ResolverSettings(model=ModelSettings())
    try:
        for seed in args.seed:
            for name in args.profiles:
                for shape in args.shapes:
                    _run(
                        spark,
                        settings,
                        shape=shape,
                        name=name,
                        people=args.people,
                        seed=seed,
                        explain=args.explain_misses,
                    )
    finally:
        spark.stop()
    return 0


def _run(
    spark: Any,
    settings: ResolverSettings,
    *,
    shape: str,
    name: str,
    people: int,
    seed: int,
    explain: bool = False,
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
    if explain:
        _explain_misses(spark, frames, res, settings)


_SHORT = {"given_name": "given", "email_canonical": "email"}


def _explain_misses(
    spark: Any, frames: list[Any], res: Any, settings: ResolverSettings, *, top: int = 12
) -> None:
    """Prints what the true pairs left apart share, and how many non-matches share as much.

    A missed pair's evidence is the set of compared fields both records hold and agree on (a
    name by its exact value, or by its Soundex code when only that agrees). For each such set
    S the non-matching pairs that agree on at least S are counted by grouping the records on
    S's values: if there are many, no rule that reads only those fields can link the true pair
    without linking them too, whatever its weights. Beside it, the missed pairs' match
    probability under the trained model (``not blocked`` when no prediction rule reaches them).
    """
    from collections import Counter
    from itertools import combinations

    import pandas as pd
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from cardlake.er.conflicts import without_fillers
    from cardlake.er.probabilistic import (
        COMPARED,
        pairs_with_levels,
        present_columns,
        with_blocking_keys,
    )

    # The records as resolve_entities has them: fillers counted over every file, taken out.
    union = without_fillers(reduce(DataFrame.unionByName, person_records(spark, frames)))
    union = union.localCheckpoint(eager=True)
    labels = [r["source_dataset"] for r in union.select("source_dataset").distinct().collect()]
    records = [union.where(F.col("source_dataset") == label) for label in sorted(labels)]
    held = present_columns(union)
    evidence_columns = [c for c in COMPARED if c in held]
    recs = pd.concat([r.toPandas() for r in with_blocking_keys(records)])
    recs = recs.merge(res.entities_df.select("uid", "entity_id").toPandas(), on="uid", how="left")
    recs["side"] = recs["uid"].str.split("|").str[0]
    link = len(frames) == 2
    by_uid = recs.set_index("uid")

    def pairs_of(group: pd.DataFrame) -> list[tuple[str, str]]:
        uids = sorted(group["uid"])
        return [(a, b) for a, b in combinations(uids, 2) if not link or a[:3] != b[:3]]

    true_pairs = [p for _, g in recs.groupby("person") for p in pairs_of(g)]
    missed = [
        (a, b) for a, b in true_pairs if by_uid.at[a, "entity_id"] != by_uid.at[b, "entity_id"]
    ]

    def evidence(a: str, b: str) -> tuple[str, ...]:
        ra, rb = by_uid.loc[a], by_uid.loc[b]
        out = []
        for col in evidence_columns:
            x, y = ra[col], rb[col]
            if pd.isna(x) or pd.isna(y):
                continue
            if x == y:
                out.append(col)
            elif col in ("given_name", "surname"):
                sound = f"{col}_sound"
                if not pd.isna(ra[sound]) and ra[sound] == rb[sound]:
                    out.append(sound)
        return tuple(out)

    def sharing(keys: tuple[str, ...]) -> tuple[int, int]:
        # (true pairs, non-matching pairs) agreeing on at least ``keys``.
        if not keys:
            return len(true_pairs), -1
        cols = list(keys)
        held = recs.dropna(subset=cols)
        total = same = 0
        for _, g in held.groupby(cols):
            if link:
                sides = g["side"].value_counts()
                total += int(sides.get("in0", 0)) * int(sides.get("in1", 0))
                per = g.groupby("person")["side"].value_counts().unstack(fill_value=0)
                same += int((per.get("in0", 0) * per.get("in1", 0)).sum())
            else:
                n = len(g)
                total += n * (n - 1) // 2
                sizes = g.groupby("person").size()
                same += int((sizes * (sizes - 1) // 2).sum())
        return same, total - same

    scored = pairs_with_levels(
        spark, [r.drop("person") for r in records], model=res.model, settings=settings.model
    )
    key = scored[["uid_l", "uid_r"]].min(axis=1) + " " + scored[["uid_l", "uid_r"]].max(axis=1)
    probability = dict(zip(key, scored["match_probability"], strict=True))
    gammas = [c for c in scored.columns if c.startswith("gamma_")]
    level = dict(zip(key, scored[gammas].astype(str).agg(" ".join, axis=1), strict=True))

    signatures = Counter(evidence(a, b) for a, b in missed)
    print(
        f"  explain: {len(true_pairs)} true pairs, {len(missed)} left apart; by the evidence "
        f"both records hold and agree on (gammas: {' '.join(g[6:] for g in gammas)}):"
    )
    reachable = 0
    for keys, count in signatures.most_common():
        same, other = sharing(keys)
        if other >= 0 and same > other:
            reachable += count
        if keys not in dict(signatures.most_common(top)):
            continue
        examples = [(a, b) for a, b in missed if evidence(a, b) == keys][:3]
        shown = [
            f"{probability[f'{a} {b}']:.3f}" if f"{a} {b}" in probability else "not blocked"
            for a, b in examples
        ]
        levels = sorted({level[f"{a} {b}"] for a, b in examples if f"{a} {b}" in level})
        print(
            f"    {count:4d} missed  agree on {'+'.join(_SHORT.get(k, k) for k in keys) or '-'}"
            f": true pairs so {same}, non-matches so {other}; p {', '.join(shown)} "
            f"levels {levels}"
        )
    # Linking every pair that agrees on a set most pairs agreeing on it are matches (the Bayes
    # decision of a model reading exact agreement only) would find these too.
    print(
        f"  explain: {reachable} of {len(missed)} missed pairs agree on a set of fields that "
        f"more true pairs than non-matches agree on; recall with them "
        f"{(len(true_pairs) - len(missed) + reachable) / max(len(true_pairs), 1):.4f}"
    )


if __name__ == "__main__":
    sys.exit(main())
