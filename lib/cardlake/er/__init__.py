"""Entity resolution: person records from any input, matched into entities.

Public API (what the silver job and ``jobs/resolve_entities.py`` call)::

    records_df = to_person_records(raw_df, mapping=mapping, dataset="crm")
    resolution = resolve_entities(spark, [records_df], settings=ResolverSettings())
    metrics = evaluate_clusters(resolution.entities_df, truth_df)

The session must carry :func:`splink_spark_conf` settings for Splink's fuzzy comparisons.
"""

from cardlake.er.evaluate import ClusterMetrics, evaluate_clusters
from cardlake.er.graph import ClusteringDidNotConverge, connected_components
from cardlake.er.probabilistic import ModelSettings, splink_spark_conf
from cardlake.er.records import (
    PERSON_RECORD_COLUMNS,
    ROLES,
    MappingError,
    load_mapping,
    read_person_file,
    to_person_records,
    validate_mapping,
)
from cardlake.er.resolve import (
    Resolution,
    ResolverSettings,
    match_new_records,
    resolve_entities,
)

__all__ = [
    "PERSON_RECORD_COLUMNS",
    "ROLES",
    "ClusterMetrics",
    "ClusteringDidNotConverge",
    "MappingError",
    "ModelSettings",
    "Resolution",
    "ResolverSettings",
    "connected_components",
    "evaluate_clusters",
    "load_mapping",
    "match_new_records",
    "read_person_file",
    "resolve_entities",
    "splink_spark_conf",
    "to_person_records",
    "validate_mapping",
]
