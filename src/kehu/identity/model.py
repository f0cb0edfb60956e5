"""The splink model of identity resolution: settings written once from an
:class:`~kehu.identity.spec.IdentitySpec`, executed by the database API of the chosen engine
(DuckDB in-process by default, Spark when a cluster is configured).

The model compares names (hanzi and pinyin, family and given name, swapped order), birth
date, gender, phone, e-mail, ID number, address and locality (postcode and city); each
comparison is used when the records have data for it. Its m probabilities are trained by
expectation maximisation without labels, u probabilities on random pairs.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from kehu.errors import EngineError, KehuInputError
from kehu.i18n import _
from kehu.identity.spec import IdentitySpec

ENGINES = ("duckdb", "spark")
log = logging.getLogger(__name__)
UID = "record_id"
SOURCE = "source_system"
#: columns each comparison needs (any of them with data)
NEEDS = {
    "family_name": ("family_name",), "given_name": ("given_name",),
    "birth_date": ("birth_date",), "gender": ("gender",), "phone": ("phone",),
    "email": ("email",), "id_number": ("id_number",), "address": ("address",),
    "locality": ("postcode", "city"),
}


#: blocking columns that decide a comparison's outcome (EM cannot train it on them)
TOUCHES = {
    "family_name": {"family_name", "given_name", "name_key", "name_norm"},
    "given_name": {"family_name", "given_name", "name_key", "name_norm"},
    "birth_date": {"birth_date", "birth_year"}, "gender": {"gender"}, "phone": {"phone"},
    "email": {"email", "email_user"}, "id_number": {"id_number", "birth_date", "birth_year"},
    "address": {"address"},
    "locality": {"postcode", "city"},
}


def present_columns(records: pa.Table) -> set[str]:
    """Columns with at least one value (a comparison on an empty column cannot be
    trained)."""
    return {c for c in records.column_names
            if records.column(c).null_count < records.num_rows}


def db_api(engine: str = "duckdb", *, spark: Any = None, threads: int | None = None,
           memory_limit: str | None = None) -> Any:
    """splink's database API for ``engine``: ``duckdb`` (a private in-memory connection)
    or ``spark`` (needs the ``spark`` session)."""
    if engine == "duckdb":
        import duckdb
        from splink import DuckDBAPI

        config: dict[str, Any] = {"autoinstall_known_extensions": False,
                                  "autoload_known_extensions": False}
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        con = duckdb.connect(config=config)
        con.execute("SET enable_progress_bar = false")
        return DuckDBAPI(connection=con)
    if engine == "spark":
        if spark is None:
            raise KehuInputError(_("The spark engine needs a Spark session: pass spark= "
                                   "(kehu's Spark engine provides one)."))
        from splink import SparkAPI

        return SparkAPI(spark_session=spark)
    raise KehuInputError(_("The 'engine' parameter must be one of {opts}. Got {v!r} "
                           "instead.").format(opts=", ".join(ENGINES), v=engine))


def _name_comparison(col: str, other: str, hanzi: str | None) -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    levels: list[Any] = [cll.NullLevel(col)]
    if hanzi:
        levels.append(cll.ExactMatchLevel(hanzi).configure(tf_adjustment_column=hanzi))
    levels += [
        cll.ExactMatchLevel(col).configure(tf_adjustment_column=col),
        cll.CustomLevel(f"{col}_l = {other}_r", label_for_charts=f"{col} = other {other}"),
        cll.JaroWinklerLevel(col, 0.92), cll.JaroWinklerLevel(col, 0.88),
        cll.JaroWinklerLevel(col, 0.7), cll.ElseLevel(),
    ]
    return cl.CustomComparison(comparison_levels=levels, output_column_name=col)


def comparisons(spec: IdentitySpec, present: set[str]) -> list[Any]:
    """The splink comparisons of ``spec`` that the records have data for."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    def has(name: str) -> bool:
        return any(c in present for c in NEEDS[name])

    out: list[Any] = []
    use = [c for c in spec.comparisons if has(c)]
    for name in use:
        if name in ("family_name", "given_name"):
            other = "given_name" if name == "family_name" else "family_name"
            if other not in present:   # cross-column level needs both
                other = name
            hanzi = name.replace("_name", "_hanzi")
            out.append(_name_comparison(name, other, hanzi if hanzi in present else None))
        elif name == "birth_date":
            if "id_number" in use:
                continue                      # compared with the ID number (below)
            out.append(cl.CustomComparison(output_column_name=name, comparison_levels=[
                cll.NullLevel(name), *_birth_levels()]))
        elif name == "gender":
            out.append(cl.ExactMatch(name))
        elif name == "phone":
            out.append(cl.CustomComparison(output_column_name=name, comparison_levels=[
                cll.NullLevel(name), cll.ExactMatchLevel(name).configure(
                    tf_adjustment_column=name),
                cll.JaroWinklerLevel(name, 0.95), cll.ElseLevel()]))
        elif name == "email":
            out.append(cl.CustomComparison(output_column_name=name, comparison_levels=[
                cll.NullLevel(name), cll.ExactMatchLevel(name),
                cll.ExactMatchLevel("email_user"), cll.JaroWinklerLevel(name, 0.88),
                cll.ElseLevel()]))
        elif name == "id_number":
            out.append(_id_birth("birth_date" in use))
        elif name == "address":
            out.append(cl.CustomComparison(output_column_name=name, comparison_levels=[
                cll.NullLevel(name), cll.ExactMatchLevel(name).configure(
                    tf_adjustment_column=name),
                cll.JaroWinklerLevel(name, 0.95), cll.JaroWinklerLevel(name, 0.88),
                cll.JaroWinklerLevel(name, 0.7), cll.ElseLevel()]))
        elif name == "locality":
            out.append(_locality("postcode" in present, "city" in present))
    if not out:
        raise KehuInputError(_("The records have no column identity resolution can compare: "
                               "give at least a name, birth date, phone, e-mail, ID number "
                               "or address."))
    return out


def _birth_levels() -> list[Any]:
    import splink.comparison_level_library as cll

    b = "birth_date"
    return [cll.ExactMatchLevel(b), cll.LevenshteinLevel(b, 1),
            cll.AbsoluteDateDifferenceLevel(b, input_is_string=True, threshold=1, metric="year",
                                            datetime_format="%Y-%m-%d"),
            cll.ElseLevel()]


def _id_birth(birth: bool) -> Any:
    """ID number and birth date as one comparison: a Chinese resident ID contains the birth
    date, so two agreeing IDs are not also two pieces of evidence from their birthdays
    (counted twice, accounts opened under someone else's ID would outweigh any name).

    Levels: same ID; a typo (nearly equal, one failing its check character — valid IDs of
    people born on the same day in the same district differ in a character or two); then,
    without agreeing IDs, the birth date: equal where an ID is missing, equal although both
    IDs differ, one character off, within a year; else.
    """
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    i, b = "id_number", "birth_date"
    levels: list[Any] = [
        cll.And(cll.NullLevel(i), cll.NullLevel(b)) if birth else cll.NullLevel(i),
        cll.ExactMatchLevel(i),
        # Jaro-Winkler, not Damerau-Levenshtein: DuckDB's is ~25× slower on 18 characters
        cll.And(cll.CustomLevel("not (id_valid_l and id_valid_r)"), cll.JaroWinklerLevel(i, 0.95)),
    ]
    if birth:
        levels += [cll.And(cll.NullLevel(i), cll.ExactMatchLevel(b)).configure(
                       label_for_charts="Birth date equal, an ID number missing"),
                   *_birth_levels()]
    else:
        levels.append(cll.ElseLevel())
    return cl.CustomComparison(comparison_levels=levels,
                               output_column_name="id_birth" if birth else i)


def _locality(postcode: bool, city: bool) -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    levels: list[Any] = []
    if postcode and city:
        levels += [cll.And(cll.NullLevel("postcode"), cll.NullLevel("city")),
                   cll.And(cll.ExactMatchLevel("postcode"), cll.ExactMatchLevel("city"))]
    else:
        levels.append(cll.NullLevel("postcode" if postcode else "city"))
    if postcode:
        levels.append(cll.ExactMatchLevel("postcode").configure(
            tf_adjustment_column="postcode"))
    if city:
        levels.append(cll.ExactMatchLevel("city").configure(tf_adjustment_column="city"))
    if postcode:
        levels.append(cll.LevenshteinLevel("postcode", 1))
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(comparison_levels=levels, output_column_name="locality")


def rule_pairs(records: pa.Table, rule: list[str]) -> int:
    """How many candidate pairs a blocking rule generates (records equal on all its
    columns, none null)."""
    import pyarrow.compute as pc

    t = records.select(rule)
    mask = None
    for c in rule:
        ok = pc.is_valid(t.column(c))
        mask = ok if mask is None else pc.and_(mask, ok)
    t = t.filter(mask)
    if not t.num_rows:
        return 0
    n = t.group_by(rule).aggregate([([], "count_all")]).column("count_all").to_numpy()
    return int((n * (n - 1) // 2).sum())


def chosen_rules(spec: IdentitySpec, records: pa.Table, present: set[str]
                 ) -> list[list[str]]:
    """The spec's blocking rules whose columns have data, and its broad rules that stay
    within the pair budget."""
    rules = [r for r in spec.blocking_rules if all(c in present for c in r)]
    budget = min(spec.pair_budget * max(records.num_rows, 1), spec.broad_pair_cap)
    for r in spec.broad_blocking_rules:
        if all(c in present for c in r) and r not in rules and \
                rule_pairs(records, r) <= budget:
            rules.append(r)
    return rules


def _em_session(linker: Any, block: list[str], max_pairs: int) -> bool:
    """One EM session, with the share of matches fixed at the model's prior: left free, it
    drifts in blocks where every pair shares something rare (a name: most such pairs are
    namesakes) until the "match" class is made of non-matches, or runs to 1 in blocks of
    (almost) only matches. Where a fixed share does not converge, it is tried free. False
    when neither converges."""
    from splink import block_on

    em = linker.training.estimate_parameters_using_expectation_maximisation
    for fixed in (True, False):
        try:
            em(block_on(*block), max_pairs=max_pairs,
               fix_probability_two_random_records_match=fixed)
            return True
        except Exception as exc:
            log.info("EM session blocked on %s failed (prior fixed: %s): %s", block, fixed,
                     str(exc).splitlines()[0])
    return False


@contextmanager
def _quiet() -> Any:
    log = logging.getLogger("splink")
    level = log.level
    log.setLevel(logging.ERROR)   # kehu reports what matters itself
    try:
        yield
    finally:
        log.setLevel(level)


class LinkModel:
    """An identity-resolution model: :meth:`fit` trains it without labels, :meth:`link`
    scores candidate pairs and clusters records at the match threshold.

    Parameters only are stored at construction; ``settings_`` (the trained splink model,
    JSON-serialisable) is set by :meth:`fit` or given to reuse a model trained before.
    """

    def __init__(self, spec: IdentitySpec | None = None, engine: str = "duckdb", *,
                 spark: Any = None, threads: int | None = None,
                 settings: dict[str, Any] | None = None) -> None:
        self.spec = spec or IdentitySpec()
        self.engine = engine
        self.spark = spark
        self.threads = threads
        if settings is not None:
            self.settings_ = settings

    # -- building ---------------------------------------------------------------------------
    def _settings(self, records: pa.Table, present: set[str]) -> Any:
        from splink import SettingsCreator, block_on

        spec = self.spec
        rules: list[Any] = [block_on(*r) for r in chosen_rules(spec, records, present)]
        if not rules:
            raise KehuInputError(_("None of the blocking rules can be used: their columns "
                                   "have no data ({rules}). Add a rule on columns the records "
                                   "have.").format(rules=spec.blocking_rules))
        return SettingsCreator(
            unique_id_column_name=UID, link_type="dedupe_only",
            source_dataset_column_name=SOURCE,
            blocking_rules_to_generate_predictions=rules,
            comparisons=comparisons(spec, present),
            additional_columns_to_retain=[SOURCE],
            retain_matching_columns=False, retain_intermediate_calculation_columns=False,
        )

    def _linker(self, records: pa.Table, settings: Any) -> tuple[Any, Any]:
        from splink import Linker

        api = db_api(self.engine, spark=self.spark, threads=self.threads)
        data: Any = records
        if self.engine == "spark":
            data = self.spark.createDataFrame(records.to_pandas())
        sdf = api.register(data)
        return Linker(sdf, settings, log_level=logging.ERROR), api

    # -- training ---------------------------------------------------------------------------
    def fit(self, records: pa.Table) -> LinkModel:
        """Train on normalised records (:func:`kehu.identity.normalise.normalise_records`):
        the probability that two random records match from deterministic rules, u from
        random pairs, m by EM over the spec's training blocks."""
        from splink import block_on

        _check_unique(records)
        present = present_columns(records)
        spec = self.spec
        with _quiet():
            linker, _api = self._linker(records, self._settings(records, present))
            try:
                deterministic = [block_on(*r) for r in (("id_number",), ("phone",), ("email",),
                                                        ("name_key", "birth_date"))
                                 if all(c in present for c in r)]
                if deterministic:
                    linker.training.estimate_probability_two_random_records_match(
                        deterministic, recall=0.8)
                linker.training.estimate_u_using_random_sampling(max_pairs=spec.u_pairs,
                                                                 seed=spec.seed)
                used = [c for c in spec.comparisons if any(x in present for x in NEEDS[c])]
                untrained = set(used)
                for block in spec.training_blocks + [
                        b for b in spec.fallback_training_blocks
                        if b not in spec.training_blocks]:
                    fallback = block not in spec.training_blocks
                    teaches = {c for c in used if not set(block) & TOUCHES[c]}
                    if not all(c in present for c in block) or (fallback and
                                                                 not teaches & untrained):
                        continue
                    if rule_pairs(records, block) == 0:
                        continue
                    if not _em_session(linker, block, spec.em_pairs):
                        continue
                    untrained -= teaches
                if untrained == set(used):
                    raise KehuInputError(_("No EM training block can be used: the columns of "
                                           "{blocks} have no data.").format(
                                               blocks=spec.training_blocks))
                self.settings_ = linker.misc.save_model_to_json()
            except KehuInputError:
                raise
            except Exception as exc:
                raise EngineError(_("Training the identity model failed on {engine}: {err}")
                                  .format(engine=self.engine, err=exc)) from exc
        self.present_ = sorted(present)
        return self

    # -- scoring and clustering -------------------------------------------------------------
    def link(self, records: pa.Table, threshold: float | None = None
             ) -> tuple[pa.Table, pa.Table]:
        """(clusters, pairs): every record's ``cluster_id`` at the match threshold, and the
        scored pairs at or above ``threshold`` (default: the review threshold;
        ``record_id_l``, ``record_id_r``, ``match_probability``, ``match_weight``,
        ``name_weight``; the smaller id on the left)."""
        if not hasattr(self, "settings_"):
            raise KehuInputError(_("The identity model is not trained yet: call fit() or "
                                   "give settings= of a trained model."))
        from splink import block_on

        _check_unique(records)
        spec = self.spec
        present = present_columns(records)
        settings = dict(self.settings_)
        dialect = "spark" if self.engine == "spark" else "duckdb"
        settings["retain_intermediate_calculation_columns"] = True   # the name levels
        settings["blocking_rules_to_generate_predictions"] = [
            block_on(*r).create_blocking_rule_dict(dialect)
            for r in chosen_rules(spec, records, present)]
        with _quiet():
            linker, _api = self._linker(records, settings)
            try:
                pred = linker.inference.predict(threshold_match_probability=(
                    spec.review_threshold if threshold is None else threshold))
                clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
                    pred, threshold_match_probability=spec.match_threshold)
                cols = {col.unquote().name for col in pred.columns}
                weights = [c for c in ("mw_family_name", "mw_tf_adj_family_name",
                                       "mw_given_name", "mw_tf_adj_given_name") if c in cols]
                pairs = _arrow(pred.as_duckdbpyrelation() if self.engine == "duckdb"
                               else pred.as_spark_dataframe(),
                               [f"{UID}_l", f"{UID}_r", "match_probability", "match_weight",
                                *weights])
                cl = _arrow(clusters.as_duckdbpyrelation() if self.engine == "duckdb"
                            else clusters.as_spark_dataframe(), [UID, "cluster_id"])
            except Exception as exc:
                raise EngineError(_("Scoring identity pairs failed on {engine}: {err}")
                                  .format(engine=self.engine, err=exc)) from exc
        return cl, _ordered(pairs)


def _arrow(rel: Any, columns: list[str]) -> pa.Table:
    if hasattr(rel, "toArrow"):           # a Spark DataFrame (Spark 4)
        return rel.select(*columns).toArrow()
    return rel.select(*columns).to_arrow_table()


def _ordered(pairs: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    left, right = pairs.column(f"{UID}_l"), pairs.column(f"{UID}_r")
    swap = pc.greater(left, right)
    out = {f"{UID}_l": pc.if_else(swap, right, left), f"{UID}_r": pc.if_else(swap, left, right),
           "match_probability": pairs.column("match_probability"),
           "match_weight": pairs.column("match_weight")}
    name_weight = pa.array(np.zeros(pairs.num_rows))
    for c in ("mw_family_name", "mw_tf_adj_family_name", "mw_given_name",
              "mw_tf_adj_given_name"):
        if c in pairs.column_names:
            name_weight = pc.add(name_weight, pc.fill_null(pairs.column(c), 0.0))
    out["name_weight"] = name_weight
    return pa.table(out)


def _check_unique(records: pa.Table) -> None:
    import pyarrow.compute as pc

    ids = records.column(UID)
    if ids.null_count:
        raise KehuInputError(_("{n} records have no record_id; every record needs one.")
                             .format(n=ids.null_count))
    if pc.count_distinct(ids).as_py() != records.num_rows:
        counts = pc.value_counts(ids)
        dup = [v["values"] for v in counts.to_pylist() if v["counts"] > 1][:5]
        raise KehuInputError(_("record_id must be unique; repeated: {ids}.").format(
            ids=", ".join(map(str, dup))))
