"""Orchestration: the full history or chosen months' drops, plus the static truth."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from cardlake.synth import landing as L
from cardlake.synth import vocab as V
from cardlake.synth.noise import canonical_phone
from cardlake.synth.output import TruthSink, write_parquet
from cardlake.synth.params import SynthParams
from cardlake.synth.transactions import TxBatch, simulate_month
from cardlake.synth.truths import write_monthly_truths
from cardlake.synth.world import TRAJECTORIES, World, build_world

REPORT_LOOKBACK_MONTHS = 2  # reports land at most this many months after the transaction


@dataclass
class GenerateSummary:
    """What a generation run produced."""

    months: list[str]
    transactions: int = 0
    records: dict[str, int] = field(default_factory=dict)
    bad_records: int = 0
    files: int = 0
    seconds: float = 0.0


def _subset(batch: TxBatch, mask: np.ndarray) -> TxBatch:
    kwargs = {}
    for f in fields(batch):
        value = getattr(batch, f.name)
        kwargs[f.name] = value[mask] if isinstance(value, np.ndarray) else value
    return TxBatch(**kwargs)


def generate(
    *,
    landing_root: str | Path,
    truth_root: str | Path,
    params: SynthParams,
    months: Sequence[str] | None = None,
) -> GenerateSummary:
    """Write landing files and ground truth for the whole history or some months.

    A month's files depend only on the seed, the parameters and the month, so generating
    ``months=["2024-07"]`` alone writes the same bytes as the full run writes for July.

    Args:
        landing_root: folder of the landing zone (``<source>/<YYYY-MM>/<file>`` below it).
        truth_root: folder for the ground truth; the pipeline never reads it.
        params: generator parameters.
        months: ``YYYY-MM`` delivery months to write; None writes the full history.

    Returns:
        Counts of what was written.

    Raises:
        ValueError: a requested month is outside the history.
    """
    t0 = time.perf_counter()
    landing, truth_dir = Path(landing_root), Path(truth_root)
    world = build_world(params)
    wanted = world.months if months is None else list(months)
    unknown = [m for m in wanted if m not in world.months]
    if unknown:
        raise ValueError(
            f"months outside the history {world.months[0]}..{world.months[-1]}: {unknown}"
        )
    targets = sorted({world.month_index(m) for m in wanted})
    write_static_truth(world, truth_dir)
    summary = GenerateSummary(months=[world.months[i] for i in targets])
    reports: dict[int, TxBatch] = {}  # month index -> its reported frauds only
    for m in targets:
        for prev in range(max(0, m - REPORT_LOOKBACK_MONTHS), m):
            if prev not in reports:
                b = simulate_month(world, prev)
                reports[prev] = _subset(b, b.reported_at >= 0)
        batch = simulate_month(world, m)
        reports[m] = _subset(batch, batch.reported_at >= 0)
        truth = TruthSink()
        ctx = L.MonthContext(world=world, m=m, landing_root=landing, truth=truth)
        L.merchants(ctx)
        L.fx_rates(ctx)
        L.crm_customers(ctx)
        L.financial_records(ctx)
        L.demographics(ctx)
        L.card_transactions(ctx, batch)
        lookback = [reports[k] for k in sorted(reports) if m - REPORT_LOOKBACK_MONTHS <= k <= m]
        L.chargebacks(ctx, lookback)
        L.service_interactions(ctx, batch)
        L.product_usage(ctx)
        L.marketing_monthly(ctx)
        L.engagement_truth(ctx)
        write_monthly_truths(world, m, truth)
        truth.write(truth_dir, world.months[m])
        summary.transactions += len(batch.ts)
        for src in truth.sr_cols["source"]:
            summary.records[src] = summary.records.get(src, 0) + 1
        summary.bad_records += len(truth.bad_records)
        summary.files += len(truth.deliveries)
        for old in [k for k in reports if k < m - REPORT_LOOKBACK_MONTHS + 1]:
            del reports[old]
        del batch, truth, ctx
    summary.seconds = time.perf_counter() - t0
    return summary


def write_static_truth(world: World, truth_root: Path) -> None:
    """Persons, archetypes, source keys and compromised merchants (the same for every run)."""
    w = world
    addr0 = w.addresses[0]
    write_parquet(
        truth_root / "persons" / "part-0.parquet",
        {
            "person_id": w.person_id,
            "first_name": w.first,
            "last_name": w.last,
            "gender": [V.GENDERS[g] for g in w.gender.tolist()],
            "birth_date": [str(d) for d in w.birth],
            "marital_status": [V.MARITAL[x] for x in w.marital.tolist()],
            "education": [V.EDUCATION[x] for x in w.education.tolist()],
            "occupation": [V.OCCUPATIONS[x] for x in w.occupation.tolist()],
            "income_bracket": [V.INCOME_BRACKETS[x] for x in w.income.tolist()],
            "country": w.country,
            "city": [a[1] for a in addr0],
            "postcode": [a[2] for a in addr0],
            "street": [f"{a[0]} {a[3]}" for a in addr0],
            "email": w.email,
            "phone": [canonical_phone(c, ph) for c, ph in zip(w.country, w.phone, strict=True)],
            "national_id": w.national_id,
            "household_id": w.household.tolist(),
            "join_date": [str(d) for d in w.join_date],
            "churn_month": [w.months[c] if c < len(w.months) else "" for c in w.churn_m.tolist()],
            "archetype": [V.ARCHETYPE_NAMES[a] for a in w.archetype.tolist()],
            "trajectory": [TRAJECTORIES[t] for t in w.trajectory.tolist()],
            "credit_score": w.credit_score.tolist(),
            "has_debt": w.has_debt.tolist(),
        },
    )
    write_parquet(
        truth_root / "archetypes" / "part-0.parquet",
        {
            "person_id": w.person_id,
            "archetype": [V.ARCHETYPE_NAMES[a] for a in w.archetype.tolist()],
            "trajectory": [TRAJECTORIES[t] for t in w.trajectory.tolist()],
        },
    )
    write_parquet(
        truth_root / "person_addresses" / "part-0.parquet",
        {
            "person_id": [pid for _ in w.addresses for pid in w.person_id],
            "address_version": [v for v, _ in enumerate(w.addresses) for _ in w.person_id],
            "street": [f"{a[0]} {a[3]}" for ads in w.addresses for a in ads],
            "city": [a[1] for ads in w.addresses for a in ads],
            "postcode": [a[2] for ads in w.addresses for a in ads],
        },
    )
    keys: dict[str, list[str]] = {"source": [], "key_name": [], "key_value": [], "person_id": []}

    def add(source: str, name: str, values: list[str], persons: list[str]) -> None:
        keys["source"].extend([source] * len(values))
        keys["key_name"].extend([name] * len(values))
        keys["key_value"].extend(values)
        keys["person_id"].extend(persons)

    add("crm_customers", "crm_id", w.crm_id, w.person_id)
    dups = sorted(w.dup_crm.items())
    add("crm_customers", "crm_id", [d[1][0] for d in dups], [w.person_id[i] for i, _ in dups])
    add("financial_records", "fin_id", w.fin_id, w.person_id)
    add("demographics", "demo_id", w.demo_id, w.person_id)
    add("product_usage", "app_user_id", w.app_user_id, w.person_id)
    add("marketing_monthly", "contact_id", w.contact_id, w.person_id)
    add("card_transactions", "wallet_id", w.wallet_id, w.person_id)
    cards = [(c, w.person_id[i]) for i, cs in enumerate(w.card_ids) for c in cs]
    add("card_transactions", "card_id", [c for c, _ in cards], [p for _, p in cards])
    write_parquet(truth_root / "source_keys" / "part-0.parquet", keys)
    mer = w.merchants
    write_parquet(
        truth_root / "compromised_merchants" / "part-0.parquet",
        {
            "merchant_id": [mer.merchant_id[i] for i, _, _ in mer.compromised],
            "first_day": [str(a) for _, a, _ in mer.compromised],
            "last_day": [str(b) for _, _, b in mer.compromised],
        },
    )
