"""Market-basket analysis: association rules between products (or categories) counted by the
engine, as Ibis expressions.

Definitions, over ``N`` baskets (a basket is an order — ``coalesce(order_id,
transaction_id)`` — or, with ``basket="customer_month"`` and friends, everything one customer
bought in one period); an item counts once per basket however many lines carry it:

- ``support(X)`` = baskets containing every item of X / N;
- rule ``A → C``: ``support`` = support(A ∪ C), ``confidence`` = support(A ∪ C) / support(A),
  ``lift`` = confidence / support(C), ``leverage`` = support(A ∪ C) − support(A)·support(C),
  ``conviction`` = (1 − support(C)) / (1 − confidence) (infinite when confidence is 1) — the
  definitions of ``mlxtend.frequent_patterns.association_rules``.

Counting follows Apriori: items below ``min_support`` are dropped first, pairs are counted by a
self-join of the pruned basket–item table (so the join only ever sees frequent items), and
with ``max_items=3`` triples are counted only from frequent pairs whose sub-pairs are all
frequent. Nothing leaves the engine until the (small) rule table is read, so the same
expression runs on DuckDB now and on Spark for millions of baskets.

Antecedents of three-item rules are the two items joined by :data:`ITEM_SEPARATOR`.
"""

from __future__ import annotations

import math
from datetime import date

import ibis
from ibis.expr.types import Table

from kehu.errors import KehuInputError
from kehu.i18n import _

ITEM_SEPARATOR = " & "
LEVELS = ("product", "category", "subcategory")
#: basket definitions: an order, or one customer's purchases in a period
BASKETS = {"order": None, "customer_day": "D", "customer_week": "W", "customer_month": "M",
           "customer_quarter": "Q", "customer_year": "Y"}
RULE_COLUMNS = ("antecedent", "consequent", "support", "confidence", "lift", "conviction",
                "leverage", "baskets", "antecedent_support", "consequent_support")


def basket_items(transactions: Table, products: Table | None = None,
                 level: str = "product", basket: str = "order", as_of: date | None = None,
                 since: date | None = None) -> Table:
    """Distinct (basket, item) pairs of purchases (refunds left out) between ``since`` and
    ``as_of`` (both inclusive); ``item`` is the product, or its category / subcategory."""
    _check_choice("level", level, LEVELS)
    _check_choice("basket", basket, tuple(BASKETS))
    t = transactions
    t = t.filter(t.product_id.notnull() & (t.kind.isnull() | (t.kind != "refund")))
    day = t.transaction_time.cast("date")
    if as_of is not None:
        t = t.filter(day <= ibis.literal(as_of))
    if since is not None:
        t = t.filter(day >= ibis.literal(since))
    unit = BASKETS[basket]
    if unit is None:
        key = t.order_id.coalesce(t.transaction_id)
    else:
        key = t.customer_id.concat("|", t.transaction_time.truncate(unit).cast("string"))
    t = t.mutate(basket=key)
    if level == "product":
        bi = t.select("basket", item=t.product_id)
    else:
        if products is None:
            raise KehuInputError(_("The 'products' parameter is needed for level={level!r}: "
                                   "pass the products table.").format(level=level))
        p = products.select("product_id", item=products[level])
        j = t.join(p, "product_id")
        bi = j.filter(j.item.notnull()).select("basket", "item")
    return bi.distinct()


def association_rules(transactions: Table, products: Table | None = None,
                      level: str = "product", min_support: float = 0.001,
                      min_confidence: float = 0.0, max_items: int = 2,
                      as_of: date | None = None, since: date | None = None,
                      basket: str = "order", min_lift: float | None = None) -> Table:
    """Association rules ``antecedent → consequent`` with :data:`RULE_COLUMNS`, sorted by lift.

    >>> import ibis
    >>> from datetime import datetime
    >>> tx = ibis.memtable({
    ...     "transaction_id": ["1", "2", "3", "4", "5", "6", "7"],
    ...     "order_id": ["o1", "o1", "o2", "o2", "o3", "o4", "o4"],
    ...     "customer_id": ["c"] * 7, "transaction_time": [datetime(2024, 1, 1)] * 7,
    ...     "product_id": ["tea", "cup", "tea", "cup", "tea", "pen", "pen"],
    ...     "kind": [None] * 7})
    >>> r = association_rules(tx, min_support=0.5).to_pandas()
    >>> r[["antecedent", "consequent", "support", "confidence", "lift", "baskets"]]
      antecedent consequent  support  confidence      lift  baskets
    0        cup        tea      0.5    1.000000  1.333333        2
    1        tea        cup      0.5    0.666667  1.333333        2
    """
    if not (isinstance(min_support, int | float) and 0 < min_support <= 1):
        raise KehuInputError(_("The 'min_support' parameter must be a share in (0, 1]. Got "
                               "{v!r} instead; 0.001 keeps items in at least 0.1% of baskets."
                               ).format(v=min_support))
    if not (isinstance(min_confidence, int | float) and 0 <= min_confidence <= 1):
        raise KehuInputError(_("The 'min_confidence' parameter must be a share in [0, 1]. Got "
                               "{v!r} instead.").format(v=min_confidence))
    if max_items not in (2, 3):
        raise KehuInputError(_("The 'max_items' parameter must be 2 (pairs) or 3 (triples). "
                               "Got {v!r} instead.").format(v=max_items))
    bi = basket_items(transactions, products, level, basket, as_of, since)
    totals = bi.aggregate(n=bi.basket.nunique())
    counts = bi.group_by("item").aggregate(n_item=bi.count())
    counts = counts.cross_join(totals)
    # a count threshold equal to the share: ceil with a tolerance for the float product
    min_count = (counts.n * min_support - 1e-9).ceil()
    frequent = counts.filter(counts.n_item >= min_count).select("item", "n_item", "n")
    pruned = bi.semi_join(frequent.select("item"), "item")
    a = pruned.select(basket="basket", item_a="item")
    b = pruned.view().select(basket_b="basket", item_b="item")
    pair_lines = a.join(b, [a.basket == b.basket_b, a.item_a < b.item_b]).select(
        "basket", "item_a", "item_b")
    pairs = pair_lines.group_by(["item_a", "item_b"]).aggregate(n_ab=pair_lines.count())
    pairs = pairs.cross_join(totals)
    pairs = pairs.filter(pairs.n_ab >= (pairs.n * min_support - 1e-9).ceil()).select(
        "item_a", "item_b", "n_ab")
    single = frequent.select(item_c="item", n_c="n_item", n="n")
    forward = pairs.select(antecedent="item_a", consequent="item_b", n_ab="n_ab",
                           n_a_key="item_a")
    backward = pairs.select(antecedent="item_b", consequent="item_a", n_ab="n_ab",
                            n_a_key="item_b")
    ante = frequent.select(n_a_key="item", n_a="n_item")
    rules = forward.union(backward).join(ante, "n_a_key").drop("n_a_key")
    if max_items == 3:
        rules = rules.union(_triple_rules(pair_lines, pairs, min_support, totals))
    rules = rules.join(single, rules.consequent == single.item_c).drop("item_c")
    return _measures(rules, min_confidence, min_lift)


def _triple_rules(pair_lines: Table, pairs: Table, min_support: float,
                  totals: Table) -> Table:
    """Rules ``{x, y} → z`` from triples whose three sub-pairs are frequent."""
    keys = pairs.select("item_a", "item_b")
    ab = pair_lines.semi_join(keys, ["item_a", "item_b"])
    # the third item z > y extends a frequent pair (x, y) through a frequent pair (x, z)
    c = ab.view().select(basket_c="basket", item_p="item_a", item_c="item_b")
    tri = ab.join(c, [ab.basket == c.basket_c, ab.item_a == c.item_p,
                      ab.item_b < c.item_c]).select(x="item_a", y="item_b", z="item_c")
    tri = tri.semi_join(keys.select(y="item_a", z="item_b"), ["y", "z"])
    n3 = tri.group_by(["x", "y", "z"]).aggregate(n_ab=tri.count()).cross_join(totals)
    n3 = n3.filter(n3.n_ab >= (n3.n * min_support - 1e-9).ceil()).drop("n")
    sep = ITEM_SEPARATOR
    pc = pairs.select(p1="item_a", p2="item_b", n_a="n_ab")
    parts = []
    for a1, a2, cons in (("x", "y", "z"), ("x", "z", "y"), ("y", "z", "x")):
        r = n3.join(pc, [n3[a1] == pc.p1, n3[a2] == pc.p2])
        parts.append(r.select(antecedent=r[a1].concat(sep, r[a2]), consequent=r[cons],
                              n_ab="n_ab", n_a="n_a"))
    return parts[0].union(parts[1]).union(parts[2])


def _measures(rules: Table, min_confidence: float, min_lift: float | None) -> Table:
    n = rules.n.cast("float64")
    s_ab, s_a, s_c = rules.n_ab / n, rules.n_a / n, rules.n_c / n
    conf = rules.n_ab.cast("float64") / rules.n_a
    r = rules.mutate(support=s_ab, confidence=conf, antecedent_support=s_a,
                     consequent_support=s_c, baskets=rules.n_ab.cast("int64"))
    r = r.mutate(lift=r.confidence / r.consequent_support,
                 leverage=r.support - r.antecedent_support * r.consequent_support,
                 conviction=ibis.cases(
                     (r.confidence >= 1.0, ibis.literal(math.inf, "float64")),
                     else_=(1.0 - r.consequent_support) / (1.0 - r.confidence)))
    r = r.filter(r.confidence >= min_confidence - 1e-12)
    if min_lift is not None:
        r = r.filter(r.lift >= min_lift)
    return r.select(*RULE_COLUMNS).order_by(
        [ibis.desc("lift"), ibis.desc("confidence"), "antecedent", "consequent"])


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise KehuInputError(_("The '{name}' parameter must be one of {allowed}. Got {v!r} "
                               "instead.").format(name=name, allowed=", ".join(allowed),
                                                  v=value))
