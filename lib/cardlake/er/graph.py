"""Connected components in Spark: pairwise links into clusters, without GraphFrames.

Min-label propagation over an undirected edge list: every node starts with its own id as
label and takes the smallest label among itself and its neighbours until nothing changes.
The number of rounds is the largest cluster diameter, small for person clusters (links come
from blocking on shared attributes, so clusters are dense). Each round's labels are
checkpointed locally so the plan does not grow with the rounds.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

DEFAULT_MAX_ITERATIONS = 50


class ClusteringDidNotConverge(RuntimeError):
    """Label propagation was still changing labels after the iteration bound."""


def connected_components(
    edges_df: DataFrame,
    *,
    src_col: str = "uid_l",
    dst_col: str = "uid_r",
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> DataFrame:
    """Labels every node that appears in an edge with its component.

    Args:
        edges_df: undirected edges; self-loops and duplicates are harmless.
        src_col: column of one end.
        dst_col: column of the other end.
        max_iterations: bound on propagation rounds.

    Returns:
        ``(node, component)``: ``component`` is the smallest node id of the node's component.
        Nodes without edges are not in the output (they are their own component).

    Raises:
        ClusteringDidNotConverge: labels still changed after ``max_iterations`` rounds.
    """
    pairs = edges_df.select(F.col(src_col).alias("a"), F.col(dst_col).alias("b"))
    undirected = pairs.unionByName(pairs.select(F.col("b").alias("a"), F.col("a").alias("b")))
    undirected = undirected.where(F.col("a") != F.col("b")).localCheckpoint(eager=True)
    # Start each node at the smallest of itself and its direct neighbours: saves one round.
    labels = undirected.groupBy("a").agg(
        F.least(F.first("a"), F.min("b")).alias("label")
    ).select(F.col("a").alias("node"), "label").localCheckpoint(eager=True)
    for _ in range(max_iterations):
        # Pointer jumping: a node also adopts its label's label, halving long chains each round.
        via_edges = undirected.join(labels, undirected["a"] == labels["node"], how="inner").select(
            F.col("b").alias("node"), F.col("label"))
        hop = labels.alias("n").join(
            labels.alias("l"), F.col("n.label") == F.col("l.node"), how="inner"
        ).select(F.col("n.node").alias("node"), F.col("l.label").alias("label"))
        updated = labels.unionByName(via_edges).unionByName(hop).groupBy("node").agg(
            F.min("label").alias("label")).localCheckpoint(eager=True)
        changed = updated.alias("u").join(
            labels.alias("o"), F.col("u.node") == F.col("o.node"), how="inner"
        ).where(F.col("u.label") != F.col("o.label")).limit(1).count()
        labels = updated
        if changed == 0:
            return labels.select(F.col("node"), F.col("label").alias("component"))
    raise ClusteringDidNotConverge(
        f"connected components still changing after {max_iterations} rounds; raise the bound "
        "or check for a giant component (a blocking key shared by too many records)"
    )
