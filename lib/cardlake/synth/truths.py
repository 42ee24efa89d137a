"""Probabilities the generator knows and the pipeline has to estimate, written as truth.

Both are computed from the world and the generator's own rates, with no random draw, so adding
them changes no other output for the same seed:

- the chance of an adverse event in a month (what the risk model's label counts: a fraud
  contact, a failed-or-declined share of at least a quarter, a contact unresolved at month end);
- the chance that a person uses each app product in a month (what a cross-sell campaign for a
  product not yet held hopes for).

Evaluation combines the monthly figures over its own horizon (``cardlake.ml.evaluate``).
"""

from __future__ import annotations

import numpy as np

from cardlake.synth import vocab as V
from cardlake.synth.output import TruthSink
from cardlake.synth.transactions import STATE_P, _arch_table
from cardlake.synth.world import ACTIVE, DECLINING, World

FAILED_SHARE = 0.25  # the risk event's failed_rate >= 0.25 (conf/ml.yaml risk.event_expression)
FAILED_P = float(STATE_P[1] + STATE_P[2])  # failed + declined, as gold counts failed_count
UNRESOLVED_P = 0.05  # share of contacts the generator leaves without a resolution
FRAUD_CONTACT_P = 0.6  # share of fraud victims who call about it in the month
MAX_TX = 400  # Poisson tail beyond this many transactions in a month is negligible here


def _failed_share_probability(lam: np.ndarray) -> np.ndarray:
    """P(at least one transaction and failed/total >= FAILED_SHARE), N ~ Poisson(lam)."""
    # Imported here: scipy.stats takes 2 s to import, and every cardlake command imports this
    # package for its settings.
    from scipy import stats

    n = np.arange(1, MAX_TX + 1)
    need = np.ceil(FAILED_SHARE * n - 1e-9).astype(int)
    tail = stats.binom.sf(need - 1, n, FAILED_P)  # P(failed >= need | N = n)
    weights = stats.poisson.pmf(n[None, :], lam[:, None])
    return (weights * tail[None, :]).sum(axis=1)


def adverse_event_probability(world: World, m: int) -> np.ndarray:
    """Each person's probability of an adverse event in month ``m`` (0 when not on the books).

    The transaction count is Poisson with the generator's mean; each transaction fails or is
    declined with probability ``FAILED_P``; service contacts are Poisson, each unresolved with
    ``UNRESOLVED_P``; card-testing and account-takeover victims report it with
    ``FRAUD_CONTACT_P``. Contacts opened just before month end and resolved after it, and the
    extra failures of card-testing probes, are left out, so the figure is a close lower bound.
    """
    p = world.params
    state = world.state[:, m]
    alive = (state == ACTIVE) | (state == DECLINING)
    start = world.month_starts[m]
    ndays = int((world.month_starts[m + 1] - start).astype(int))
    joined_now = (world.join_m == m) & (world.join_date >= start)
    join_day = np.where(joined_now, (world.join_date - start).astype(int), 0)
    frac = (ndays - join_day) / ndays
    lam_tx = (
        p.tx_per_customer_month
        * _arch_table("tx_scale")[world.archetype]
        * world.engagement[:, m]
        * frac
    )
    p_failed = _failed_share_probability(lam_tx)
    lam_service = p.service_contact_rate * (1.0 + 2.0 * (state == DECLINING))
    p_unresolved = 1.0 - np.exp(-lam_service * UNRESOLVED_P)
    victim = 1.0 - (1.0 - p.card_testing_rate) * (1.0 - p.account_takeover_rate)
    p_fraud = FRAUD_CONTACT_P * victim * (world.engagement[:, m] > 0)
    none = (1.0 - p_failed) * (1.0 - p_unresolved) * (1.0 - p_fraud)
    return np.where(alive, 1.0 - none, 0.0)


def product_use_probability(world: World, m: int) -> np.ndarray:
    """[person, product] probability of using each app product in month ``m``.

    As ``landing.product_usage`` draws it: the archetype's affinity scaled by engagement, for
    app users engaged that month.
    """
    aff = np.array([V.PRODUCT_AFFINITY[a] for a in V.ARCHETYPE_NAMES])[world.archetype]
    eng = world.engagement[:, m]
    use = aff * (0.4 + 0.6 * eng)[:, None]
    return np.where((world.in_app & (eng > 0))[:, None], use, 0.0)


def write_monthly_truths(world: World, m: int, truth: TruthSink) -> None:
    """Adds ``adverse_event_monthly`` and ``product_use_monthly`` for month ``m`` to ``truth``.

    Args:
        world: the hidden world.
        m: month index.
        truth: the month's truth sink (it writes one Parquet file per table and month).
    """
    persons = np.array(world.person_id, dtype=object)
    truth.table("adverse_event_monthly", ()).update(
        {
            "person_id": persons,
            "adverse_event_probability": np.round(adverse_event_probability(world, m), 6),
        }
    )
    use = product_use_probability(world, m)
    n_products = len(V.PRODUCTS)
    truth.table("product_use_monthly", ()).update(
        {
            "person_id": np.repeat(persons, n_products),
            "product": np.tile(np.array(V.PRODUCTS, dtype=object), world.n),
            "use_probability": np.round(use.reshape(-1), 6),
        }
    )
