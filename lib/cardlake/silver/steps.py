"""The boundaries between silver's writes, where crash tests make a run die.

:data:`STEPS` lists them in the order a run passes them (within :data:`TWO_AT_A_TIME`, the
order it starts them); tests/silver/test_crash.py kills a run at each one and checks that every
write of a run has its own boundary before it, in the thread that makes it.
"""

from __future__ import annotations

from cardlake.crashpoint import CRASH_EXIT_CODE, crash_point

CRASH_AT_ENV = "CARDLAKE_SILVER_CRASH_AT"  # tests: die (os._exit) at this step of a run
__all__ = ["CRASH_AT_ENV", "CRASH_EXIT_CODE", "STEPS", "TWO_AT_A_TIME", "step"]

TWO_AT_A_TIME = (
    "before_transactions",
    "before_customer_snapshots",
    "before_product_usage",
    "before_marketing_monthly",
    "before_customers",
    "before_interactions",
    "before_unresolved_activity",
    "before_accounts",
    "before_cards",
    "before_debts",
    "before_fx_rates",
    "before_merchants",
)
"""The boundaries of the tables rewritten from the resolution and bronze, in the order run()
starts their writes, two at a time: a run passes them in this order or nearly (which of two
threads gets to its boundary first varies, and ``before_unresolved_activity`` waits for the
writes of marketing_monthly and product_usage to end while the other thread goes on)."""

STEPS = (
    # commit_resolution: the key events, the crosswalk (its boundary is job.run's ``write``),
    # then the state (save_state)
    "before_key_events",
    "before_crosswalk",
    "before_er_model",
    "before_er_records",
    *TWO_AT_A_TIME,
    "before_er_metrics",
    "before_mlflow",
    "before_checks",
    # the last: only a run that got past every write says silver is built from its inputs
    "before_watermark",
)


def step(point: str) -> None:
    """A named boundary between two writes; the process dies here when ``CRASH_AT_ENV`` names it."""
    crash_point(CRASH_AT_ENV, point, stage="silver")
