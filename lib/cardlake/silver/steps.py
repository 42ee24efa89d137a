"""The boundaries between silver's writes, where crash tests make a run die.

:data:`STEPS` lists them in the order a run passes them; tests/silver/test_crash.py kills a
run at each one and checks that every write of a run has its own boundary before it.
"""

from __future__ import annotations

from cardlake.crashpoint import CRASH_EXIT_CODE, crash_point

CRASH_AT_ENV = "CARDLAKE_SILVER_CRASH_AT"  # tests: die (os._exit) at this step of a run
__all__ = ["CRASH_AT_ENV", "CRASH_EXIT_CODE", "STEPS", "step"]

STEPS = (
    # commit_resolution: the key events, the crosswalk (its boundary is job.run's ``write``),
    # then the state (save_state)
    "before_key_events",
    "before_crosswalk",
    "before_er_model",
    "before_er_records",
    # the tables rewritten from the resolution and bronze, in the order run() writes them
    "before_customer_snapshots",
    "before_customers",
    "before_fx_rates",
    "before_merchants",
    "before_transactions",
    "before_interactions",
    "before_marketing_monthly",
    "before_product_usage",
    "before_unresolved_activity",
    "before_accounts",
    "before_cards",
    "before_debts",
    "before_er_metrics",
    "before_mlflow",
    "before_checks",
    # the last: only a run that got past every write says silver is built from its inputs
    "before_watermark",
)


def step(point: str) -> None:
    """A named boundary between two writes; the process dies here when ``CRASH_AT_ENV`` names it."""
    crash_point(CRASH_AT_ENV, point, stage="silver")
