"""CLV on any engine: BG/NBD and Gamma-Gamma fitted on the driver from sufficient statistics
(or a sample), every customer scored where the data lives.

- BG/NBD needs only the distinct (x, t_x, T) rows of the customer summary and how many
  customers share each — a group-by in the engine; only that table reaches the driver.
- Gamma-Gamma needs the distinct (x, m̄) rows of repeat buyers with their counts. m̄ is a mean
  of amounts, so at scale almost every repeat buyer has a row of their own: above
  :data:`MAX_FIT_ROWS` rows the model is fitted on a random sample of that many customers.
- Scores (P(alive), expected purchases, expected spend, CLV) and the forecast's expected
  purchases per month are computed batch by batch with :meth:`Engine.map_batches` — in process
  on DuckDB, on the executors on Spark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from ibis.expr.types import Table

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models.clv import BetaGeo, GammaGamma, customer_lifetime_value
from kehu.warehouse.engine import round_significant

if TYPE_CHECKING:
    import pandas as pd

    from kehu.warehouse import Engine

#: rows of sufficient statistics (or customers of a sample) the driver fits on
MAX_FIT_ROWS = 2_000_000
SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")
SCORE_SCHEMA = pa.schema([("customer_id", pa.string()), ("p_alive", pa.float64()),
                          ("expected_purchases_12m", pa.float64()),
                          ("expected_spend", pa.float64()), ("clv", pa.float64())])


@dataclass(frozen=True)
class FittedClv:
    """Models fitted on the customer summary (``customer_id`` and :data:`SUMMARY_COLUMNS`,
    an Ibis table of the engine) as of a date; the analysis run passes its own to the
    forecast, so the models are not fitted twice."""

    summary: Table
    bgnbd: BetaGeo
    gamma_gamma: GammaGamma
    #: how the models were fitted (rows the driver saw, sampled or not)
    basis: dict[str, Any] = field(default_factory=dict)
    #: :func:`monthly` tables already computed, by number of months
    monthly_tables: dict[int, Table] = field(default_factory=dict, compare=False, repr=False)


class TooLittleData(KehuInputError):
    """Fewer than 20 customers, or fewer than 10 with repeat purchases."""


def fit(engine: Engine, summary: Table, seed: int = 0) -> FittedClv:
    """Fit both models; raises :class:`TooLittleData` when the data cannot support them
    (fewer than 20 customers or 10 with repeat purchases)."""
    s = summary
    stats = s.group_by(["frequency", "recency", "T"]).aggregate(n=s.count())
    basis: dict[str, Any] = {}
    t = _capped(engine, stats.order_by(["frequency", "recency", "T"]))
    if t is None:   # a sample of customers, grouped again
        t = _grouped(engine.collect_sample(s.select("customer_id", "frequency", "recency",
                                                    "T"), MAX_FIT_ROWS, "customer_id", seed),
                     ["frequency", "recency", "T"])
        basis["bgnbd"] = {"rows": t.num_rows, "sampled": True}
    else:
        basis["bgnbd"] = {"rows": t.num_rows, "sampled": False}
    x, tx, tt, w = (t.column(c).to_numpy().astype(float) for c in ("frequency", "recency",
                                                                     "T", "n"))
    customers, repeat = int(w.sum()), int(w[x > 0].sum())
    if customers < 20 or repeat < 10:
        raise TooLittleData(_("Too little history to fit the CLV models: {n} customers, {r} "
                              "with repeat purchases (need at least 20 and 10).").format(
            n=customers, r=repeat))
    basis["customers"] = customers
    bg = BetaGeo().fit(x, tx, tt, weights=w)
    buyers = s.filter((s.frequency > 0) & (s.monetary_value > 0))
    gg_stats = buyers.group_by(["frequency", "monetary_value"]).aggregate(n=buyers.count())
    g = _capped(engine, gg_stats.order_by(["frequency", "monetary_value"]))
    if g is None:
        g = _grouped(engine.collect_sample(buyers.select("customer_id", "frequency",
                                                         "monetary_value"),
                                           MAX_FIT_ROWS, "customer_id", seed),
                     ["frequency", "monetary_value"])
        basis["gamma_gamma"] = {"rows": g.num_rows, "sampled": True}
    else:
        basis["gamma_gamma"] = {"rows": g.num_rows, "sampled": False}
    # m̄ is a mean: the engines' sums may differ in the last bit (see round_significant), so
    # rows are grouped again once rounded — both engines then fit on the very same rows
    gx, gm, gw = _regrouped(g.column("frequency").to_numpy().astype(float),
                            round_significant(g.column("monetary_value").to_numpy()),
                            g.column("n").to_numpy().astype(float))
    basis["gamma_gamma"]["rows"] = len(gx)
    gg = GammaGamma().fit(gx, gm, weights=gw)
    return FittedClv(summary, bg, gg, basis)


def _regrouped(x: np.ndarray, m: np.ndarray, n: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows with equal (x, m) merged, their weights summed, sorted by (x, m).

    >>> _regrouped(np.array([1., 1., 2.]), np.array([5., 5., 3.]), np.array([1., 2., 4.]))
    (array([1., 2.]), array([5., 3.]), array([3., 4.]))
    """
    keys, inverse = np.unique(np.stack([x, m], axis=1), axis=0, return_inverse=True)
    return keys[:, 0], keys[:, 1], np.bincount(inverse.ravel(), weights=n)


def _capped(engine: Engine, expr: Table) -> pa.Table | None:
    """All rows of ``expr`` when there are at most :data:`MAX_FIT_ROWS`, else None."""
    t = engine.execute_arrow(expr.limit(MAX_FIT_ROWS + 1))
    return t if t.num_rows <= MAX_FIT_ROWS else None


def _grouped(sample: pa.Table, keys: list[str]) -> pa.Table:
    return sample.group_by(keys).aggregate([("customer_id", "count")]).rename_columns(
        [*keys, "n"]).sort_by([(k, "ascending") for k in keys])


def margin_rate(engine: Engine, purchases: Table) -> float:
    """1 − cost / revenue of the purchases (1 when costs are unknown), at least 0."""
    row = engine.execute_arrow(purchases.aggregate(
        rev=purchases.amount.sum(), cost=purchases.cost.sum())).to_pylist()[0]
    if row["cost"] and row["rev"]:
        return max(0.0, 1 - row["cost"] / row["rev"])
    return 1.0


def scores(engine: Engine, fitted: FittedClv, months: int, margin: float,
           annual_discount_rate: float) -> Table:
    """Per customer of the summary: ``p_alive``, ``expected_purchases_12m``,
    ``expected_spend`` and ``clv`` (discounted margin over ``months``)."""
    bg, gg = fitted.bgnbd, fitted.gamma_gamma

    def score(df: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        x, tx, t, mv = (df[c].to_numpy(dtype=float) for c in SUMMARY_COLUMNS)
        clv = customer_lifetime_value(bg, gg, x, tx, t, mv, months=months, margin=margin,
                                      annual_discount_rate=annual_discount_rate,
                                      periods_per_month=30.0)
        return pd.DataFrame({
            "customer_id": df["customer_id"].astype(str),
            "p_alive": bg.probability_alive(x, tx, t),
            "expected_purchases_12m": bg.expected_purchases(365.0, x, tx, t),
            "expected_spend": gg.expected_spend(x, mv),
            "clv": np.asarray(clv, dtype=float)})

    s = fitted.summary
    return engine.map_batches(s.select("customer_id", *SUMMARY_COLUMNS), score, SCORE_SCHEMA)


def monthly(engine: Engine, fitted: FittedClv, months: int) -> Table:
    """Per customer: expected purchases in each of the next ``months`` 30-day months
    (``p1`` …) and expected spend per purchase (``spend``) — what the forecast sums.
    Computed once per ``fitted`` and number of months."""
    if months in fitted.monthly_tables:
        return fitted.monthly_tables[months]
    bg, gg = fitted.bgnbd, fitted.gamma_gamma
    schema = pa.schema([("customer_id", pa.string()),
                        *[(f"p{m}", pa.float64()) for m in range(1, months + 1)],
                        ("spend", pa.float64())])

    def per_month(df: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        x, tx, t, mv = (df[c].to_numpy(dtype=float) for c in SUMMARY_COLUMNS)
        out: dict[str, Any] = {"customer_id": df["customer_id"].astype(str)}
        prev = np.zeros(len(df))
        for m in range(1, months + 1):
            cum = bg.expected_purchases(30.0 * m, x, tx, t)
            out[f"p{m}"] = np.clip(cum - prev, 0, None)
            prev = cum
        out["spend"] = gg.expected_spend(x, mv)
        return pd.DataFrame(out)

    s = fitted.summary
    out = engine.map_batches(s.select("customer_id", *SUMMARY_COLUMNS), per_month, schema)
    fitted.monthly_tables[months] = out
    return out


__all__ = ["MAX_FIT_ROWS", "FittedClv", "TooLittleData", "fit", "margin_rate", "monthly", "scores"]
