"""Great Expectations behind one small interface: :func:`validate` and :class:`Check`."""

from cardlake.quality.expectations import Check, CheckResult, ValidationOutcome, Validator, validate

__all__ = ["Check", "CheckResult", "ValidationOutcome", "Validator", "validate"]
