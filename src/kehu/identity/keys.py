"""Stable kehu customer keys: a cluster keeps its key across runs while it stays the same
customer.

- Each existing key goes to the cluster that holds most of its records (ties: the cluster
  with the smallest id) — when a cluster splits, the larger part keeps the key.
- A cluster offered several keys (clusters merged) keeps the smallest; the others retire
  and are never issued again.
- A cluster offered none (a new customer, or the smaller part of a split) gets a new key,
  numbered after the highest key ever issued.

>>> import pyarrow as pa
>>> clusters = pa.table({"record_id": ["a", "b", "c"], "cluster_id": ["a", "a", "c"]})
>>> first = assign_keys(clusters, None, high_water=0)
>>> first.keys["kehu_key"].to_pylist()
['K000000001', 'K000000001', 'K000000002']
>>> again = assign_keys(clusters, first.keys, high_water=first.high_water)
>>> again.keys.equals(first.keys), again.events
(True, [])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa


@dataclass
class KeyEvent:
    """A change of keys for the journal: ``merge`` (``retired`` keys joined ``key``) or
    ``split`` (records of ``key`` left for other keys). ``before`` / ``after`` map each
    record concerned to its key."""

    action: str
    key: str
    retired: list[str] = field(default_factory=list)
    before: dict[str, str | None] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)


@dataclass
class KeyAssignment:
    keys: pa.Table                 # record_id, kehu_key (sorted by record_id)
    high_water: int                # highest key number issued so far
    events: list[KeyEvent]
    new_keys: int


def key_number(key: str, prefix: str = "K") -> int:
    """The number in a key (0 for a key of another shape)."""
    digits = key[len(prefix):] if key.startswith(prefix) else ""
    return int(digits) if digits.isdigit() else 0


def assign_keys(clusters: pa.Table, previous: pa.Table | None, *, high_water: int,
                prefix: str = "K", digits: int = 9) -> KeyAssignment:
    """Keys for ``clusters`` (``record_id``, ``cluster_id``) given the ``previous`` keys
    (``record_id``, ``kehu_key``) and the highest key number ever issued."""
    df = clusters.select(["record_id", "cluster_id"]).to_pandas()
    df = df.astype({"record_id": str, "cluster_id": str})
    if previous is not None and previous.num_rows:
        prev = previous.select(["record_id", "kehu_key"]).to_pandas().astype(
            {"record_id": str})
        df = df.merge(prev, on="record_id", how="left")
        high_water = max([high_water, *(key_number(k, prefix) for k in prev["kehu_key"]
                                        .dropna().unique())])
    else:
        df["kehu_key"] = None
    df = df.rename(columns={"kehu_key": "old_key"})
    # each old key goes to the cluster holding most of its records
    held = df.dropna(subset=["old_key"]).groupby(["old_key", "cluster_id"]).size() \
        .reset_index(name="n").sort_values(["old_key", "n", "cluster_id"],
                                           ascending=[True, False, True], kind="mergesort")
    winner = held.drop_duplicates("old_key")
    offered = winner.groupby("cluster_id")["old_key"].agg(sorted)
    chosen: dict[str, str] = {c: ks[0] for c, ks in offered.items()}
    retired: dict[str, list[str]] = {c: ks[1:] for c, ks in offered.items() if len(ks) > 1}
    fresh = sorted(set(df["cluster_id"]) - set(chosen))
    for c in fresh:
        high_water += 1
        chosen[c] = f"{prefix}{high_water:0{digits}d}"
    df["kehu_key"] = df["cluster_id"].map(chosen)
    events: list[KeyEvent] = []
    for c, gone in sorted(retired.items()):
        part = df[df["cluster_id"] == c]
        events.append(KeyEvent("merge", chosen[c], gone, _pairs(part, "old_key"),
                               _pairs(part, "kehu_key")))
    moved = df[df["old_key"].notna() & (df["old_key"] != df["kehu_key"])]
    for key, part in moved.groupby("old_key"):
        if any(str(key) in e.retired for e in events) and \
                (part["kehu_key"].isin([e.key for e in events if str(key) in e.retired])).all():
            continue    # all of a retired key's records moved with it: covered by the merge
        events.append(KeyEvent("split", str(key), [], _pairs(part, "old_key"),
                               _pairs(part, "kehu_key")))
    out = df.sort_values("record_id", kind="mergesort")
    return KeyAssignment(
        pa.table({"record_id": pa.array(out["record_id"].to_numpy(), pa.string()),
                  "kehu_key": pa.array(out["kehu_key"].to_numpy(), pa.string())}),
        high_water, events, len(fresh))


def _pairs(part: Any, col: str) -> dict[str, Any]:
    return {str(r): (None if pd.isna(k) else str(k))
            for r, k in zip(part["record_id"], part[col], strict=True)}
