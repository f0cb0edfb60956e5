"""Stable kehu customer keys and clusters under people's decisions: the rules the keys
promise, each case worked out by hand."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from kehu.identity.cluster import constrained_clusters
from kehu.identity.keys import assign_keys


def _clusters(groups: list[list[str]]) -> pa.Table:
    rows = [(r, g[0]) for g in groups for r in g]
    return pa.table({"record_id": [r for r, _ in rows], "cluster_id": [c for _, c in rows]})


def _keys(a: pa.Table) -> dict[str, str]:
    return dict(zip(a["record_id"].to_pylist(), a["kehu_key"].to_pylist(), strict=True))


def test_unchanged_input_gives_identical_keys() -> None:
    groups = [["a", "b"], ["c"], ["d", "e", "f"]]
    first = assign_keys(_clusters(groups), None, high_water=0)
    # the same clusters, listed in another order and with other cluster ids
    again = assign_keys(_clusters([["f", "e", "d"], ["c"], ["b", "a"]]), first.keys,
                        high_water=first.high_water)
    assert _keys(again.keys) == _keys(first.keys)
    assert again.events == [] and again.new_keys == 0 and again.high_water == 3


def test_a_record_joining_a_cluster_takes_its_key() -> None:
    first = assign_keys(_clusters([["a", "b"], ["c"]]), None, high_water=0)
    k = _keys(first.keys)
    second = assign_keys(_clusters([["a", "b", "x"], ["c"]]), first.keys, high_water=3)
    got = _keys(second.keys)
    assert got["x"] == got["a"] == k["a"] and got["c"] == k["c"]
    assert second.new_keys == 0 and second.events == []


def test_merged_clusters_keep_the_smallest_key_and_retire_the_other() -> None:
    first = assign_keys(_clusters([["a"], ["b", "c"], ["d"]]), None, high_water=0)
    k = _keys(first.keys)   # a: K…1, b/c: K…2, d: K…3
    second = assign_keys(_clusters([["a", "d"], ["b", "c"]]), first.keys, high_water=3)
    got = _keys(second.keys)
    assert got["a"] == got["d"] == k["a"] == "K000000001"
    [merge] = second.events
    assert merge.action == "merge" and merge.key == "K000000001"
    assert merge.retired == ["K000000003"]
    assert merge.before == {"a": "K000000001", "d": "K000000003"}
    # a later new customer never gets the retired number
    third = assign_keys(_clusters([["a", "d"], ["b", "c"], ["z"]]), second.keys,
                        high_water=second.high_water)
    assert _keys(third.keys)["z"] == "K000000004"


def test_on_a_split_the_larger_part_keeps_the_key() -> None:
    first = assign_keys(_clusters([["a", "b", "c"], ["d"]]), None, high_water=0)
    second = assign_keys(_clusters([["a"], ["b", "c"], ["d"]]), first.keys, high_water=2)
    got = _keys(second.keys)
    assert got["b"] == got["c"] == "K000000001"        # two of three records
    assert got["a"] == "K000000003" and got["d"] == "K000000002"
    [split] = second.events
    assert split.action == "split" and split.key == "K000000001"
    assert split.before == {"a": "K000000001"} and split.after == {"a": "K000000003"}


def test_a_split_into_equal_halves_is_decided_by_the_smaller_cluster_id() -> None:
    first = assign_keys(_clusters([["p", "q", "r", "s"]]), None, high_water=0)
    second = assign_keys(_clusters([["r", "s"], ["p", "q"]]), first.keys, high_water=1)
    got = _keys(second.keys)
    assert got["p"] == got["q"] == "K000000001" and got["r"] == "K000000002"


def test_custom_prefix_and_width() -> None:
    a = assign_keys(_clusters([["a"]]), None, high_water=41, prefix="KH", digits=6)
    assert _keys(a.keys) == {"a": "KH000042"}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=30),
       st.lists(st.integers(0, 6), min_size=1, max_size=30))
def test_keys_are_a_function_of_the_clusters(first: list[int], second: list[int]) -> None:
    """Whatever happens between two runs: one key per cluster, distinct clusters distinct
    keys, and a re-run of the same clusters changes nothing."""
    n = min(len(first), len(second))
    ids = [f"r{i:02d}" for i in range(n)]
    c1 = pa.table({"record_id": ids, "cluster_id": [f"c{x}" for x in first[:n]]})
    c2 = pa.table({"record_id": ids, "cluster_id": [f"c{x}" for x in second[:n]]})
    a = assign_keys(c1, None, high_water=0)
    b = assign_keys(c2, a.keys, high_water=a.high_water)
    kb = _keys(b.keys)
    by_cluster: dict[str, set[str]] = {}
    for r, c in zip(ids, second[:n], strict=True):
        by_cluster.setdefault(str(c), set()).add(kb[r])
    assert all(len(v) == 1 for v in by_cluster.values())
    assert len({next(iter(v)) for v in by_cluster.values()}) == len(by_cluster)
    again = assign_keys(c2, b.keys, high_water=b.high_water)
    assert _keys(again.keys) == kb and again.events == []


# -- clusters under decisions ----------------------------------------------------------------
EDGES = pa.table({"record_id_l": ["a", "b", "c", "d"], "record_id_r": ["b", "c", "d", "e"],
                  "match_probability": [0.99, 0.96, 0.999, 0.98]})


def _groups(t: pa.Table) -> set[frozenset[str]]:
    out: dict[str, set[str]] = {}
    for r, c in zip(t["record_id"].to_pylist(), t["cluster_id"].to_pylist(), strict=True):
        out.setdefault(c, set()).add(r)
    return {frozenset(v) for v in out.values()}


def test_keep_apart_cuts_the_weakest_links_between_them() -> None:
    base = _clusters([["a", "b", "c", "d", "e"], ["f"]])
    out, conflicts = constrained_clusters(base, EDGES, cannot_link=[("a", "e")])
    # strongest first: c-d .999, a-b .99, d-e .98 join; b-c .96 would join a with e
    assert _groups(out) == {frozenset("ab"), frozenset("cde"), frozenset("f")}
    assert conflicts == []


def test_manual_merge_joins_clusters_and_names_them_by_the_smallest_id() -> None:
    base = _clusters([["a", "b"], ["x"], ["y", "z"]])
    out, _ = constrained_clusters(base, EDGES, must_link=[("z", "b")])
    assert _groups(out) == {frozenset("abyz"), frozenset("x")}
    assert dict(zip(out["record_id"].to_pylist(), out["cluster_id"].to_pylist(),
                    strict=True))["z"] == "a"


def test_people_outrank_the_model_and_keep_apart_outranks_merge() -> None:
    base = _clusters([["a", "b"], ["c"]])
    edges = pa.table({"record_id_l": ["a"], "record_id_r": ["b"], "match_probability": [0.99]})
    # a person merged b and c, and kept a and c apart: the model's a-b link gives way
    out, conflicts = constrained_clusters(base, edges, must_link=[("b", "c")],
                                          cannot_link=[("a", "c")])
    assert _groups(out) == {frozenset("a"), frozenset("bc")} and conflicts == []
    # merges a-b and b-c contradict keeping a and c apart: the later one is reported
    out, conflicts = constrained_clusters(base, edges, must_link=[("a", "b"), ("b", "c")],
                                          cannot_link=[("a", "c")])
    assert _groups(out) == {frozenset("ab"), frozenset("c")}
    assert [(c.record_id_l, c.record_id_r, c.reason) for c in conflicts] == [
        ("b", "c", "keep_apart")]


def test_a_duplicate_free_source_gives_each_customer_one_record() -> None:
    base = _clusters([["a1", "b1", "b2"]])
    edges = pa.table({"record_id_l": ["a1", "a1"], "record_id_r": ["b1", "b2"],
                      "match_probability": [0.97, 0.99]})
    src = {"a1": "A", "b1": "B", "b2": "B"}
    out, _ = constrained_clusters(base, edges, sources=src, deduplicated_sources=["B"])
    assert _groups(out) == {frozenset({"a1", "b2"}), frozenset({"b1"})}
    # a source not declared free of duplicates may keep both
    out, _ = constrained_clusters(base, edges, sources=src, deduplicated_sources=["A"])
    assert _groups(out) == {frozenset({"a1", "b1", "b2"})}
