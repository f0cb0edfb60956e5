"""Match probabilities under the one-link constraint of duplicate-free sources
(:mod:`kehu.identity.exclusive`): what the declaration changes, that it adapts to how much
two sources overlap, and invariants on any scored pairs."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kehu.identity.exclusive import exclusive_probabilities

PRIOR = 1e-3


def records(**sizes: int) -> pa.Table:
    ids = [f"{s.lower()}{i}" for s, n in sizes.items() for i in range(n)]
    return pa.table({"record_id": ids,
                     "source_system": [s for s, n in sizes.items() for _ in range(n)]})


def pairs(rows: list[tuple[str, str, float]]) -> pa.Table:
    return pa.table({
        "record_id_l": [a for a, _b, _p in rows], "record_id_r": [b for _a, b, _p in rows],
        "match_probability": [p for _a, _b, p in rows],
        "match_weight": [math.log2(p / (1 - p)) for _a, _b, p in rows],
        "name_weight": [0.0] * len(rows)})


def probabilities(t: pa.Table) -> dict[tuple[str, str], float]:
    return dict(zip(zip(t["record_id_l"].to_pylist(), t["record_id_r"].to_pylist(),
                        strict=True), t["match_probability"].to_pylist(), strict=True))


def test_a_sole_candidate_is_linked_and_two_candidates_share_only_when_declared() -> None:
    # two files of 20 people, 17 found with certainty; a17's only candidate scores 0.8 on
    # its own; a18 has two candidates at 0.9 (one of them is someone else)
    rows = [(f"a{i}", f"b{i}", 0.9999) for i in range(17)]
    rows += [("a17", "b17", 0.8), ("a18", "b18", 0.9), ("a18", "b19", 0.9)]
    recs = records(A=20, B=20)
    same, none = exclusive_probabilities(pairs(rows), recs, [], prior=PRIOR)
    assert probabilities(same) == probabilities(pairs(rows)) and none == {}
    out, overlap = exclusive_probabilities(pairs(rows), recs, ["A", "B"], prior=PRIOR)
    p = probabilities(out)
    assert p[("a17", "b17")] >= 0.95                     # above the match threshold now
    assert p[("a18", "b18")] <= 0.5 and p[("a18", "b19")] <= 0.5     # the review queue
    assert all(p[(f"a{i}", f"b{i}")] > 0.9999 for i in range(17))
    assert overlap[("A", "B")] == pytest.approx((19 + 1) / 22, abs=0.01)
    # the weight stays the log-odds of the probability
    for w, q in zip(out["match_weight"].to_pylist(), out["match_probability"].to_pylist(),
                    strict=True):
        assert q == pytest.approx(1 / (1 + 2 ** -w))


def test_a_small_overlap_gives_a_sole_candidate_little_weight() -> None:
    # only 10 of 200 records of A have a record in B: a lone 0.8 pair is not enough
    rows = [(f"a{i}", f"b{i}", 0.9999) for i in range(10)] + [("a10", "b10", 0.8)]
    out, overlap = exclusive_probabilities(pairs(rows), records(A=200, B=200), ["A", "B"],
                                           prior=PRIOR)
    assert overlap[("A", "B")] == pytest.approx(12 / 202, abs=0.01)
    assert probabilities(out)[("a10", "b10")] < 0.95


def test_pairs_inside_a_duplicate_free_source_go_and_other_sources_keep_their_score() -> None:
    rows = [("a0", "a1", 0.99), ("c0", "c1", 0.7), ("c0", "d0", 0.7), ("a0", "c0", 0.7),
            ("a1", "c1", 0.97), ("a1", "c2", 0.97)]
    out, overlap = exclusive_probabilities(pairs(rows), records(A=3, C=3, D=1), ["A"],
                                           prior=PRIOR)
    p = probabilities(out)
    assert ("a0", "a1") not in p                      # one person is never twice in A
    assert p[("c0", "c1")] == 0.7 and p[("c0", "d0")] == 0.7   # C and D: as scored
    # C's records may each have one record in A; A's records may have several in C
    assert set(overlap) == {("C", "A")}
    assert p[("a1", "c1")] != 0.97


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABC"), st.integers(0, 5), st.sampled_from("ABC"),
                          st.integers(0, 5), st.floats(1e-4, 1 - 1e-6)),
                min_size=1, max_size=40),
       st.sets(st.sampled_from("ABC")))
def test_a_record_never_gets_more_than_one_link_in_a_duplicate_free_source(
        raw: list[tuple[str, int, str, int, float]], dedup: set[str]) -> None:
    seen: dict[tuple[str, str], float] = {}
    for sa, ia, sb, ib, p in raw:
        a, b = f"{sa.lower()}{ia}", f"{sb.lower()}{ib}"
        if a != b:
            seen[(min(a, b), max(a, b))] = p
    rows = [(a, b, p) for (a, b), p in seen.items()]
    if not rows:
        return
    out, _overlap = exclusive_probabilities(pairs(rows), records(A=6, B=6, C=6),
                                            sorted(dedup), prior=PRIOR)
    p = probabilities(out)
    total: dict[tuple[str, str], float] = {}
    for (a, b), q in p.items():
        assert 0.0 <= q <= 1.0
        sa, sb = a[0].upper(), b[0].upper()
        assert not (sa == sb and sa in dedup)
        if sa not in dedup and sb not in dedup:
            assert q == seen[(a, b)]
        for x, other in ((a, sb), (b, sa)):
            if other in dedup:
                total[(x, other)] = total.get((x, other), 0.0) + q
    assert all(v <= 1 + 1e-9 for v in total.values()), total


def test_demo_with_its_sources_declared_duplicate_free() -> None:
    """The telco demo's customers as three sources: the billing system (C), the web shop (W,
    each of its customers also in billing) and accounts opened under someone else's ID
    number (F). Declared duplicate-free, each keeps its planted duplicates found and the
    borrowed-ID accounts apart."""
    from kehu.identity import quality as q
    from kehu.identity.resolve import resolve
    from kehu.identity.spec import IdentitySpec

    recs, true = q.demo_records("telco", 4_000, seed=5)
    ids = recs["record_id"].to_pylist()
    recs = recs.append_column("source_system", pa.array([r[0] for r in ids]))
    res = resolve(recs, IdentitySpec(deduplicated_sources=["C", "W", "F"]))
    cluster = dict(zip(res.clusters["record_id"].to_pylist(),
                       res.clusters["cluster_id"].to_pylist(), strict=True))
    pred = q.pairs_of_clusters(cluster, cluster.values())
    assert q.score("kehu", "telco", pred, true, 0.0).f1 == 1.0
    borrowed = [r for r in ids if r.startswith("F")]
    assert borrowed and not any(cluster[r] == cluster.get("C" + r[1:-1]) for r in borrowed)
    assert res.overlap[("W", "C")] > 0.9 and res.overlap[("C", "W")] < 0.05
