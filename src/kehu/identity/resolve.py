"""Identity resolution from records to stable keys, without a workspace: normalise, train
(or reuse a trained model), score candidate pairs, cluster at the match threshold under the
people's decisions, and assign keys that stay stable across runs.

>>> from kehu.identity.quality import demo_records
>>> recs, true = demo_records("retail", 2_000)   # with the generator's planted duplicates
>>> res = resolve(recs)
>>> key = dict(zip(res.keys.keys["record_id"].to_pylist(), res.keys.keys["kehu_key"].to_pylist()))
>>> sorted(true)[0], all(key[a] == key[b] for a, b in true)
(('C00000083', 'W00000083'), True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kehu.identity.cluster import Conflict, components, constrained_clusters
from kehu.identity.exclusive import exclusive_probabilities
from kehu.identity.keys import KeyAssignment, assign_keys
from kehu.identity.model import LinkModel
from kehu.identity.normalise import normalise_records
from kehu.identity.spec import IdentitySpec


@dataclass
class Resolution:
    records: pa.Table                 # normalised records
    clusters: pa.Table                # record_id, cluster_id
    pairs: pa.Table                   # scored pairs at or above the review threshold
    review: pa.Table                  # pairs in the review band, in different clusters
    model: dict[str, Any]             # the trained splink model
    keys: KeyAssignment
    conflicts: list[Conflict] = field(default_factory=list)
    trained: bool = False
    #: with deduplicated sources: the estimated share of each source's records that have a
    #: record in each duplicate-free source, {(source, duplicate-free source): share}
    overlap: dict[tuple[str, str], float] = field(default_factory=dict)


def resolve(records: pa.Table, spec: IdentitySpec | None = None, *,
            model: dict[str, Any] | None = None, previous: pa.Table | None = None,
            high_water: int = 0, must_link: Iterable[tuple[str, str]] = (),
            cannot_link: Iterable[tuple[str, str]] = (), engine: str = "duckdb",
            spark: Any = None, threads: int | None = None,
            normalised: pa.Table | None = None) -> Resolution:
    """Resolve ``records`` (columns of :data:`kehu.identity.normalise.INPUT_COLUMNS`).

    ``model`` reuses a trained model (else one is trained on the records); ``previous``
    (``record_id``, ``kehu_key``) and ``high_water`` make keys stable across runs;
    ``must_link`` / ``cannot_link`` are the pairs people decided to merge / keep apart;
    ``normalised`` is :func:`normalise_records` of ``records`` when the caller has it.
    """
    spec = spec or IdentitySpec()
    norm = normalised if normalised is not None else normalise_records(records)
    lm = LinkModel(spec, engine, spark=spark, threads=threads, settings=model)
    trained = model is None
    if trained:
        lm.fit(norm)
    # between duplicate-free sources a record's candidates compete for its one link: all
    # plausible ones are scored and re-weighed (kehu.identity.exclusive), then clustered
    exclusive = bool(spec.deduplicated_sources)
    floor = min(spec.candidate_floor, spec.review_threshold) if exclusive else None
    base, pairs = lm.link(norm, threshold=floor)
    overlap: dict[tuple[str, str], float] = {}
    if exclusive:
        pairs, overlap = exclusive_probabilities(
            pairs, norm.select(["record_id", "source_system"]), spec.deduplicated_sources,
            prior=float(lm.settings_["probability_two_random_records_match"]))
        pairs = pairs.filter(pc.greater_equal(pairs["match_probability"],
                                              spec.review_threshold))
    edges = pairs.filter(pc.greater_equal(pairs["match_probability"], spec.match_threshold))
    if exclusive:
        base = components(norm["record_id"], edges)
    sources = dict(zip(norm["record_id"].to_pylist(), norm["source_system"].to_pylist(),
                       strict=True)) if spec.deduplicated_sources else None
    clusters, conflicts = constrained_clusters(
        base, edges, must_link=must_link, cannot_link=cannot_link, sources=sources,
        deduplicated_sources=spec.deduplicated_sources)
    keys = assign_keys(clusters, previous, high_water=high_water, prefix=spec.key_prefix,
                       digits=spec.key_digits)
    review = review_pairs(pairs, clusters, spec)
    return Resolution(norm, clusters, pairs, review, lm.settings_, keys, conflicts, trained,
                      overlap)


def review_pairs(pairs: pa.Table, clusters: pa.Table, spec: IdentitySpec) -> pa.Table:
    """Pairs scored between the review and match thresholds whose records ended in
    different clusters (a pair already joined through other links needs no review)."""
    band = pairs.filter(pc.less(pairs["match_probability"], spec.match_threshold))
    if not band.num_rows:
        return band
    ids = clusters["record_id"]
    cl = clusters["cluster_id"]
    left = pc.take(cl, pc.index_in(band["record_id_l"], ids))
    right = pc.take(cl, pc.index_in(band["record_id_r"], ids))
    return band.filter(pc.not_equal(left, right))
