"""Risk services shared by the CLI and the web app: rule flags with their evidence, usage
anomalies, payment risk with credit terms — each returns an Arrow table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kehu.analytics.payments import CreditTermsPolicy, PaymentScorecard, payment_risk
from kehu.risk.anomaly import UsageAnomalyModel, UsageFeatureConfig, usage_features
from kehu.risk.compile import Evidence, RiskContext, compile_rule
from kehu.risk.rules import RiskRule, RuleSet

if TYPE_CHECKING:
    from kehu.warehouse import Engine

EVIDENCE_TYPE = pa.struct([("measure", pa.string()), ("value", pa.float64()),
                           ("op", pa.string()), ("threshold", pa.float64()),
                           ("met", pa.bool_())])
FLAGS_SCHEMA = pa.schema([("customer_id", pa.string()), ("rule", pa.string()),
                          ("severity", pa.string()), ("measure", pa.string()),
                          ("value", pa.float64()), ("threshold", pa.float64()),
                          ("why", pa.string()), ("evidence", pa.list_(EVIDENCE_TYPE)),
                          ("as_of", pa.date32())])


def default_as_of(engine: Engine) -> date:
    """The latest day with a transaction (else an invoice, else today)."""
    for table, col in (("transactions", "transaction_time"), ("payments", "invoice_date")):
        t = engine.table(table)
        v = engine.execute_arrow(t.aggregate(m=t[col].max())).column(0)[0].as_py()
        if v is not None:
            return v.date() if isinstance(v, datetime) else v
    return date.today()


def context(engine: Engine, as_of: date | None = None) -> RiskContext:
    return RiskContext(engine.table("transactions"), engine.table("customers"),
                       engine.table("payments"), as_of or default_as_of(engine))


def run_rules(engine: Engine, rules: RuleSet | Sequence[RiskRule] | None = None,
              as_of: date | None = None) -> pa.Table:
    """One row per customer a rule flags: the rule, its severity, the first measured value
    and its threshold, a readable ``why`` and the full ``evidence`` (every measure, the
    comparison, whether it was met). The default rules are :meth:`RuleSet.default`."""
    rs = rules.rules if isinstance(rules, RuleSet) else list(rules or RuleSet.default().rules)
    ctx = context(engine, as_of)
    parts = []
    for rule in rs:
        c = compile_rule(rule, ctx)
        got = engine.execute_arrow(c.table.order_by("customer_id"))
        parts.append(_flags(rule, c.evidence, got, ctx.as_of))
    return pa.concat_tables(parts) if parts else FLAGS_SCHEMA.empty_table()


def _fmt(values: pa.Array) -> pa.Array:
    """Values rounded to 2 decimals as text (numpy's rounding prints 331.59, not
    331.59000000000003)."""
    v = values.to_numpy(zero_copy_only=False).astype(float)
    return pc.cast(pa.array(np.round(v, 2), mask=np.isnan(v)), pa.string())


def _flags(rule: RiskRule, evidence: list[Evidence], got: pa.Table, as_of: date) -> pa.Table:
    n = got.num_rows
    structs, why_parts = [], []
    for e in evidence:
        v = got.column(e.column).combine_chunks().cast(pa.float64())
        met = got.column(f"met_{e.column}").combine_chunks() if e.op is not None \
            else pa.nulls(n, pa.bool_())
        structs.append(pa.StructArray.from_arrays(
            [pa.array([e.measure] * n, pa.string()), v, pa.array([e.op] * n, pa.string()),
             pa.array([e.threshold] * n, pa.float64()), met], fields=list(EVIDENCE_TYPE)))
        text = pc.binary_join_element_wise(f"{e.measure} = ", pc.fill_null(_fmt(v), "-"), "")
        if e.op is not None:
            text = pc.binary_join_element_wise(text, f" {e.op} {e.threshold:g}", "")
        why_parts.append(text)
    k = len(evidence)
    flat = pa.concat_arrays(structs).take(pa.array(
        (np.arange(k)[None, :] * n + np.arange(n)[:, None]).ravel(), pa.int64()))
    ev = pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k), pa.int32()), flat)
    why = pc.binary_join_element_wise(*why_parts, "; ") if why_parts else \
        pa.array([""] * n)
    first = evidence[0]
    return pa.table({
        "customer_id": got.column("customer_id").cast(pa.string()),
        "rule": pa.array([rule.name] * n, pa.string()),
        "severity": pa.array([rule.severity] * n, pa.string()),
        "measure": pa.array([first.measure] * n, pa.string()),
        "value": got.column(first.column).cast(pa.float64()),
        "threshold": pa.array([first.threshold] * n, pa.float64()),
        "why": why, "evidence": ev, "as_of": pa.array([as_of] * n, pa.date32())},
        schema=FLAGS_SCHEMA)


def anomalies(engine: Engine, as_of: date | None = None,
              contamination: float | str = 0.01, config: UsageFeatureConfig | None = None,
              top_features: int = 3, random_state: int = 0) -> pa.Table:
    """Isolation Forest on per-customer usage features, most unusual first."""
    d = as_of or default_as_of(engine)
    feats = engine.execute_arrow(usage_features(engine.table("transactions"), d, config))
    model = UsageAnomalyModel(contamination=contamination, top_features=top_features,
                              random_state=random_state)
    df = feats.to_pandas()
    if df.empty:
        return model.empty_result()
    model.fit(df)
    return model.score(df)


def payments(engine: Engine, as_of: date | None = None,
             scorecard: PaymentScorecard | None = None,
             policy: CreditTermsPolicy | None = None) -> pa.Table:
    """Payment features, risk score and class, and recommended credit terms per customer."""
    d = as_of or default_as_of(engine)
    t = engine.execute_arrow(payment_risk(engine.table("payments"), d, scorecard, policy))
    return t.append_column("as_of", pa.array([d] * t.num_rows, pa.date32()))


def summary(flags: pa.Table) -> list[dict[str, Any]]:
    """Flag counts per rule (for a dashboard or the CLI)."""
    if flags.num_rows == 0:
        return []
    g = flags.group_by(["rule", "severity"]).aggregate([("customer_id", "count_distinct")])
    return sorted(({"rule": r["rule"], "severity": r["severity"],
                    "customers": r["customer_id_count_distinct"]} for r in g.to_pylist()),
                  key=lambda r: -int(r["customers"]))
