"""Clusters under constraints: the model's connected components, joined where a person
decided "merge" and split where a person decided "keep apart" or where a cluster would hold
two records of a source known to be free of duplicates.

A violating cluster is rebuilt greedily from its strongest links (Kruskal's algorithm that
skips any link joining two records that must stay apart); manual merges go first. Cluster
ids are the smallest record id of each cluster, so they do not depend on the engine.

>>> import pyarrow as pa
>>> base = pa.table({"record_id": ["a", "b", "c"], "cluster_id": ["x", "x", "x"]})
>>> edges = pa.table({"record_id_l": ["a", "b"], "record_id_r": ["b", "c"],
...                   "match_probability": [0.99, 0.97]})
>>> out, conflicts = constrained_clusters(base, edges, cannot_link=[("a", "c")])
>>> sorted(zip(out["record_id"].to_pylist(), out["cluster_id"].to_pylist()))
[('a', 'a'), ('b', 'a'), ('c', 'c')]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa


@dataclass(frozen=True)
class Conflict:
    """A manual merge that a keep-apart decision (or a duplicate-free source) overrides."""

    record_id_l: str
    record_id_r: str
    reason: str


class _Sets:
    """Union-find over the records of one cluster, with what each set may not meet."""

    def __init__(self, members: list[str], source: Mapping[str, str | None],
                 dedup: set[str], apart: Mapping[str, set[str]]) -> None:
        self.parent = {m: m for m in members}
        self.members = {m: {m} for m in members}
        self.sources = {m: ({source[m]} if source.get(m) in dedup else set()) for m in members}
        self.apart = apart

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def allowed(self, a: str, b: str) -> str | None:
        """None when the sets of ``a`` and ``b`` may join, else the reason."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        if self.sources[ra] & self.sources[rb]:
            return "duplicate_free_source"
        small, big = (ra, rb) if len(self.members[ra]) <= len(self.members[rb]) else (rb, ra)
        for m in self.members[small]:
            if self.apart.get(m, set()) & self.members[big]:
                return "keep_apart"
        return None

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra] |= self.members.pop(rb)
        self.sources[ra] |= self.sources.pop(rb)


def constrained_clusters(
    base: pa.Table, edges: pa.Table, *,
    must_link: Iterable[tuple[str, str]] = (),
    cannot_link: Iterable[tuple[str, str]] = (),
    sources: Mapping[str, str | None] | None = None,
    deduplicated_sources: Iterable[str] = (),
) -> tuple[pa.Table, list[Conflict]]:
    """``base`` (``record_id``, ``cluster_id``) with ``must_link`` pairs joined and
    ``cannot_link`` pairs and duplicate-free ``sources`` kept apart; ``edges`` are the links
    at or above the match threshold (``record_id_l``, ``record_id_r``,
    ``match_probability``). Returns (``record_id``, ``cluster_id``) and the manual merges that
    could not be kept."""
    df = base.select(["record_id", "cluster_id"]).to_pandas()
    df["record_id"] = df["record_id"].astype(str)
    df["cluster_id"] = df["cluster_id"].astype(str)
    must = [(str(a), str(b)) for a, b in must_link]
    cannot = [(str(a), str(b)) for a, b in cannot_link]
    dedup = set(deduplicated_sources)
    cluster_of = dict(zip(df["record_id"], df["cluster_id"], strict=True))
    known = set(cluster_of)
    must = [(a, b) for a, b in must if a in known and b in known]
    cannot = [(a, b) for a, b in cannot if a in known and b in known]

    # 1. manual merges join whole clusters
    if must:
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for a, b in must:
            ra, rb = find(cluster_of[a]), find(cluster_of[b])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        df["cluster_id"] = [find(c) if c in parent else c for c in df["cluster_id"]]
        cluster_of = dict(zip(df["record_id"], df["cluster_id"], strict=True))

    # 2. clusters that break a constraint
    bad: set[str] = {cluster_of[a] for a, b in cannot if cluster_of[a] == cluster_of[b]}
    src: dict[str, str | None] = dict(sources or {})
    if dedup and src:
        s = df.assign(source=df["record_id"].map(src))
        s = s[s["source"].isin(dedup)]
        counts = s.groupby(["cluster_id", "source"]).size()
        bad |= set(counts[counts > 1].index.get_level_values(0))
    conflicts: list[Conflict] = []
    if bad:
        df = _rebuild(df, bad, edges, must, cannot, src, dedup, conflicts)
    # 3. the smallest record id names each cluster
    df["cluster_id"] = df.groupby("cluster_id")["record_id"].transform("min")
    return pa.table({"record_id": pa.array(df["record_id"].to_numpy(), pa.string()),
                     "cluster_id": pa.array(df["cluster_id"].to_numpy(), pa.string())}), \
        conflicts


def components(record_ids: pa.Array | pa.ChunkedArray, edges: pa.Table) -> pa.Table:
    """Connected components of ``edges`` (``record_id_l``, ``record_id_r``) over
    ``record_ids``: (``record_id``, ``cluster_id``), the smallest record id naming each.

    >>> out = components(pa.array(["a", "b", "c"]),
    ...                  pa.table({"record_id_l": ["b"], "record_id_r": ["c"]}))
    >>> out["cluster_id"].to_pylist()
    ['a', 'b', 'b']
    """
    import pyarrow.compute as pc
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = pa.chunked_array([record_ids]) if isinstance(record_ids, pa.Array) else record_ids
    n = len(ids)
    left = pc.index_in(edges["record_id_l"], ids).to_numpy(zero_copy_only=False)
    right = pc.index_in(edges["record_id_r"], ids).to_numpy(zero_copy_only=False)
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    _count, label = connected_components(graph, directed=False)
    df = pd.DataFrame({"record_id": ids.to_numpy(), "label": label})
    df["cluster_id"] = df.groupby("label")["record_id"].transform("min")
    return pa.table({"record_id": pa.array(df["record_id"].to_numpy(), pa.string()),
                     "cluster_id": pa.array(df["cluster_id"].to_numpy(), pa.string())})


def _rebuild(df: pd.DataFrame, bad: set[str], edges: pa.Table, must: list[tuple[str, str]],
             cannot: list[tuple[str, str]], src: Mapping[str, str | None], dedup: set[str],
             conflicts: list[Conflict]) -> pd.DataFrame:
    in_bad = df["cluster_id"].isin(bad)
    members = df[in_bad]
    cluster_of = dict(zip(members["record_id"], members["cluster_id"], strict=True))
    e = edges.select(["record_id_l", "record_id_r", "match_probability"]).to_pandas()
    e["record_id_l"] = e["record_id_l"].astype(str)
    e["record_id_r"] = e["record_id_r"].astype(str)
    cl = e["record_id_l"].map(cluster_of)
    e = e[cl.notna() & (cl == e["record_id_r"].map(cluster_of))]
    manual = pd.DataFrame({"record_id_l": [a for a, b in must if a in cluster_of],
                           "record_id_r": [b for a, b in must if a in cluster_of],
                           "match_probability": np.inf})
    manual = manual[manual["record_id_l"].map(cluster_of) == manual["record_id_r"].map(
        cluster_of)]
    order = pd.concat([manual.assign(manual=True), e.assign(manual=False)], ignore_index=True)
    order = order.sort_values(["match_probability", "record_id_l", "record_id_r"],
                              ascending=[False, True, True], kind="mergesort")
    apart: dict[str, set[str]] = {}
    for a, b in cannot:
        if a in cluster_of:
            apart.setdefault(a, set()).add(b)
            apart.setdefault(b, set()).add(a)
    sets = _Sets(list(members["record_id"]), src, dedup, apart)
    for a, b, is_manual in zip(order["record_id_l"], order["record_id_r"], order["manual"],
                               strict=True):
        why = sets.allowed(a, b)
        if why is None:
            sets.union(a, b)
        elif is_manual:
            conflicts.append(Conflict(a, b, why))
    new = {m: "\x00" + sets.find(m) for m in members["record_id"]}   # never an old id
    df = df.copy()
    df.loc[in_bad, "cluster_id"] = df.loc[in_bad, "record_id"].map(new)
    return df
