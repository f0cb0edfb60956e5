"""Match probabilities under the one-link constraint of duplicate-free sources.

The splink model scores each pair on its own: its prior is the share of all pairs that
match, and the alternative to "a is b" is "a is not b". When a source is known to hold each
person at most once (``deduplicated_sources``), a record's candidates in that source exclude
each other: "a is b" competes with "a is another candidate there" and with "a has no record
there". For a record ``a`` of source A and a duplicate-free source B of ``n_B`` records, with
``π`` the share of A's records that have a record in B, Bayes' rule over these hypotheses
(each candidate scored by the model's Bayes factor ``K``, its match weight less the prior)
gives::

    P(a is b) = (π / n_B) K(a, b) / ((1 − π) + (π / n_B) Σ_c K(a, c))

over a's candidates ``c`` in B. A record that almost surely has a record in B and has a
single plausible candidate there is linked to it even when the pair alone is not
conclusive (a person whose name and birth date were both mistyped in one system, with the
same address); two good candidates share the probability, and go to the review queue. ``π``
is estimated from the scores themselves — the mixture weight of an EM, with one pseudo-record
either way: ``π = (Σ_a P(a has a record in B) + 1) / (n_A + 2)`` — so neither labels nor a
new threshold are involved: the match and review thresholds apply to these probabilities.

A pair takes the smaller of the probabilities of its two directions (both apply when both
sources are duplicate-free); pairs inside one duplicate-free source are dropped (they cannot
be one person); pairs between sources neither of which is duplicate-free keep the model's
probability.

>>> import math
>>> import pyarrow as pa
>>> w = lambda p: math.log2(p / (1 - p))
>>> recs = pa.table({"record_id": ["a1", "a2", "a3", "b1", "b2", "b3"],
...                  "source_system": ["A"] * 3 + ["B"] * 3})
>>> pairs = pa.table({"record_id_l": ["a1", "a2", "a2", "a1"],
...                   "record_id_r": ["b1", "b2", "b3", "a2"],
...                   "match_probability": [0.8, 0.9, 0.9, 0.7],
...                   "match_weight": [w(0.8), w(0.9), w(0.9), w(0.7)]})
>>> out, overlap = exclusive_probabilities(pairs, recs, ["A", "B"], prior=0.05)
>>> [(l, r, round(p, 2)) for l, r, p in zip(out["record_id_l"].to_pylist(),
...     out["record_id_r"].to_pylist(), out["match_probability"].to_pylist())]
[('a1', 'b1', 0.97), ('a2', 'b2', 0.5), ('a2', 'b3', 0.5)]
>>> round(overlap[("A", "B")], 2)
0.59
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

#: the EM of an overlap stops when it moves less than this
_TOLERANCE = 1e-10
_MAX_ITERATIONS = 1_000


def exclusive_probabilities(pairs: pa.Table, records: pa.Table, deduplicated: Iterable[str],
                            prior: float) -> tuple[pa.Table, dict[tuple[str, str], float]]:
    """``pairs`` (``record_id_l``, ``record_id_r``, ``match_probability``,
    ``match_weight``, any further columns kept) with the probability and weight of every
    pair that touches a ``deduplicated`` source recomputed under the one-link constraint,
    and pairs inside such a source dropped. ``records`` (``record_id``, ``source_system``)
    are all the records resolved (they give each source's size); ``prior`` is the model's
    probability that two random records match (its match weights include it).

    Also returns the estimated overlaps ``{(source, duplicate-free source): π}``: the share
    of the first source's records that have a record in the second.
    """
    dedup = set(deduplicated)
    if not dedup or pairs.num_rows == 0:
        return pairs, {}
    source = pd.Series(records.column("source_system").to_pylist(),
                       index=records.column("record_id").to_pylist(), dtype=object)
    size = source.value_counts().to_dict()
    df = pairs.to_pandas()
    sl = df["record_id_l"].map(source).to_numpy(dtype=object)
    sr = df["record_id_r"].map(source).to_numpy(dtype=object)
    inside = (sl == sr) & pd.Series(sl).isin(dedup).to_numpy()
    keep = ~inside
    df, sl, sr = df[keep].reset_index(drop=True), sl[keep], sr[keep]
    if df.empty:
        return pa.Table.from_pandas(df, schema=pairs.schema, preserve_index=False), {}

    log2_bf = np.minimum(df["match_weight"].to_numpy(np.float64)
                         - np.log2(prior / (1 - prior)), 500.0)
    bf = np.exp2(log2_bf)
    i = np.arange(len(df))
    # one row per pair and direction whose other side is duplicate-free
    long = pd.DataFrame({
        "pair": np.r_[i, i],
        "rec": np.r_[df["record_id_l"].to_numpy(object), df["record_id_r"].to_numpy(object)],
        "src": np.r_[sl, sr], "other": np.r_[sr, sl],
        "log2_bf": np.r_[log2_bf, log2_bf], "bf": np.r_[bf, bf]})
    long = long[long["other"].isin(dedup)]
    long["total"] = long.groupby(["rec", "other"])["bf"].transform("sum")
    log2_odds = np.full(len(long), np.nan)
    overlap: dict[tuple[str, str], float] = {}
    for (src, other), rows in long.groupby(["src", "other"]).indices.items():
        g = long.iloc[rows]
        totals = g.drop_duplicates("rec")["total"].to_numpy()
        pi = _overlap(totals, size.get(src, len(totals)), size[other])
        overlap[(str(src), str(other))] = pi
        t = pi / size[other]
        rest = np.maximum(g["total"].to_numpy() - g["bf"].to_numpy(), 0.0)
        log2_odds[rows] = (np.log2(t) + g["log2_bf"].to_numpy()
                           - np.log2((1 - pi) + t * rest))
    long["log2_odds"] = log2_odds
    weight = long.groupby("pair")["log2_odds"].min()
    at, w = weight.index.to_numpy(), weight.to_numpy()
    mw = df["match_weight"].to_numpy(np.float64).copy()
    mp = df["match_probability"].to_numpy(np.float64).copy()
    mw[at], mp[at] = w, 1.0 / (1.0 + np.exp2(-w))
    df["match_weight"], df["match_probability"] = mw, mp
    return pa.Table.from_pandas(df, schema=pairs.schema, preserve_index=False), overlap


def _overlap(totals: np.ndarray, n_source: int, n_other: int) -> float:
    """The share π of a source's ``n_source`` records that have a record in the other
    source (``n_other`` records), from each candidate-holding record's sum of Bayes factors
    (``totals``): the fixed point of π = (Σ P(has a record there) + 1) / (n_source + 2)."""
    pi = 0.5
    for _ in range(_MAX_ITERATIONS):
        t = pi / n_other
        has = t * totals / ((1 - pi) + t * totals)
        new = float((has.sum() + 1) / (n_source + 2))
        if abs(new - pi) < _TOLERANCE:
            return new
        pi = new
    return pi
