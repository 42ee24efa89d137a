"""Bronze: landing files into Delta with explicit schemas, quarantine and an ingest manifest."""

from cardlake.bronze.contracts import CONTRACTS, BronzeConfig, load_bronze_config
from cardlake.bronze.ingest import (
    BronzeContractError,
    DataQualityError,
    SourceReport,
    discover,
    ingest_source,
    run_bronze,
)

__all__ = [
    "CONTRACTS",
    "BronzeConfig",
    "BronzeContractError",
    "DataQualityError",
    "SourceReport",
    "discover",
    "ingest_source",
    "load_bronze_config",
    "run_bronze",
]
