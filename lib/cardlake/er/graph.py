"""Connected components in Spark: pairwise links into clusters, without GraphFrames.

Min-label propagation over an undirected edge list: every node starts with its own id as
label and takes the smallest label among itself and its neighbours until nothing changes.
The number of rounds is the largest cluster diameter, small for person clusters (links come
from blocking on shared attributes, so clusters are dense). Each round's labels are
checkpointed locally so the plan does not grow with the rounds.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
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
    labels = (
        undirected.groupBy("a")
        .agg(F.least(F.first("a"), F.min("b")).alias("label"))
        .select(F.col("a").alias("node"), "label")
        .localCheckpoint(eager=True)
    )
    for _ in range(max_iterations):
        # Pointer jumping: a node also adopts its label's label, halving long chains each round.
        via_edges = undirected.join(labels, undirected["a"] == labels["node"], how="inner").select(
            F.col("b").alias("node"), F.col("label")
        )
        hop = (
            labels.alias("n")
            .join(labels.alias("l"), F.col("n.label") == F.col("l.node"), how="inner")
            .select(F.col("n.node").alias("node"), F.col("l.label").alias("label"))
        )
        updated = (
            labels.unionByName(via_edges)
            .unionByName(hop)
            .groupBy("node")
            .agg(F.min("label").alias("label"))
            .localCheckpoint(eager=True)
        )
        changed = (
            updated.alias("u")
            .join(labels.alias("o"), F.col("u.node") == F.col("o.node"), how="inner")
            .where(F.col("u.label") != F.col("o.label"))
            .limit(1)
            .count()
        )
        labels = updated
        if changed == 0:
            return labels.select(F.col("node"), F.col("label").alias("component"))
    raise ClusteringDidNotConverge(
        f"connected components still changing after {max_iterations} rounds; raise the bound "
        "or check for a giant component (a blocking key shared by too many records)"
    )


def split_conflicting(
    components_df: DataFrame,
    links_df: DataFrame,
    values_df: DataFrame,
    *,
    conflict: Callable[[Column, Column], Column],
    src_col: str = "uid_l",
    dst_col: str = "uid_r",
    weight_col: str = "match_probability",
) -> DataFrame:
    """Components re-clustered where two members hold values no one person can have.

    Links are pairwise, clusters transitive: a record that looks enough like two people (a
    second sign-up without a birth date, sharing a household's address and phone) bridges
    them into one component. A component holding two conflicting values (``conflict`` is true
    for the pair, say birth dates more than a typo apart) is rebuilt from its own links in
    decreasing ``weight_col`` order, skipping a link that would join two groups whose values
    conflict (Kruskal's order with cannot-link constraints); the weakest bridge is the one left
    out. Components without a conflict, nearly all of them, are returned unchanged, and only
    the conflicted ones come to the driver.

    Args:
        components_df: ``(node, component)`` from :func:`connected_components`.
        links_df: the edges it was computed from, with their weight.
        values_df: ``(node, value)``; null values conflict with nothing.
        conflict: true when two (non-null, different) values cannot belong to one entity.

    Returns:
        ``(node, component)``, ``component`` again the smallest node id of its group.
    """
    valued = components_df.join(values_df, on="node", how="inner").where(F.col("value").isNotNull())
    a, b = valued.alias("a"), valued.alias("b")
    clashes = (
        a.join(
            b,
            on=(F.col("a.component") == F.col("b.component"))
            & (F.col("a.value") < F.col("b.value")),
            how="inner",
        )
        .where(conflict(F.col("a.value"), F.col("b.value")))
        .select(
            F.col("a.component").alias("component"),
            F.col("a.value").alias("a"),
            F.col("b.value").alias("b"),
        )
        .distinct()
        .collect()
    )
    if not clashes:
        return components_df
    spark = components_df.sparkSession
    bad = spark.createDataFrame(sorted({(r["component"],) for r in clashes}), "component string")
    members = components_df.join(F.broadcast(bad), on="component", how="left_semi")
    node_values: dict[str, set[str]] = {}
    for row in members.join(values_df, on="node", how="left").collect():
        node_values.setdefault(row["node"], set())
        if row["value"] is not None:
            node_values[row["node"]].add(row["value"])
    ends = members.select(F.col("node").alias("_end"))
    edges = sorted(
        (
            (-float(r[weight_col] if r[weight_col] is not None else 1.0), r[src_col], r[dst_col])
            for r in links_df.join(ends, on=F.col(src_col) == F.col("_end"), how="left_semi")
            .select(src_col, dst_col, weight_col)
            .collect()
        ),
    )
    groups = _cannot_link_groups(
        node_values, [(s, d) for _, s, d in edges], {(r["a"], r["b"]) for r in clashes}
    )
    regrouped = spark.createDataFrame(sorted(groups.items()), "node string, _group string")
    return components_df.join(regrouped, on="node", how="left").select(
        "node", F.coalesce("_group", "component").alias("component")
    )


def _cannot_link_groups(
    node_values: dict[str, set[str]], edges: list[tuple[str, str]], clashes: set[tuple[str, str]]
) -> dict[str, str]:
    """Union-find over ``edges`` in the given order, refusing a union whose values clash.

    Returns every node of ``node_values`` with the smallest node id of its group.
    """
    parent = {n: n for n in node_values}
    values = {n: set(v) for n, v in node_values.items()}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def clash(x: set[str], y: set[str]) -> bool:
        return any((min(u, v), max(u, v)) in clashes for u in x for v in y)

    for src, dst in edges:
        if src not in parent or dst not in parent:
            continue
        r1, r2 = root(src), root(dst)
        if r1 == r2 or clash(values[r1], values[r2]):
            continue
        keep, gone = min(r1, r2), max(r1, r2)
        parent[gone] = keep
        values[keep] |= values.pop(gone)
    return {n: root(n) for n in parent}
