"""The synthetic company: customers with latent value, a purchase process, churn driven by
observable behaviour, baskets with affinities, campaigns with randomised control groups — written
as the exports of the source systems that would hold them, plus the hidden ground truth.

Customers are generated in chunks; each chunk appends to every file (bounded memory).
Every random draw comes from a generator seeded by ``(seed, chunk)``: same seed, same bytes.
Planted fraud and arrears patterns (telco, bank) draw from their own stream
``(seed, chunk, 77)`` and only add rows, so everything else is unchanged by them; they are
recorded in ``truth/fraud.parquet``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from kehu.demo import names as nm
from kehu.demo.catalogue import CATALOGUES, CHURN_REASONS, COMPETITORS, Product
from kehu.demo.writers import CsvAppender, JsonLinesAppender, ParquetAppender, XlsxOrCsv
from kehu.errors import KehuInputError
from kehu.i18n import _

INDUSTRIES = ("retail", "telco", "bank")
CHUNK = 20_000
DAY = np.timedelta64(1, "D")
CLASS_P = np.array([0.45, 0.30, 0.18, 0.07])          # low, mid, high, vip
CLASS_RATE = np.array([0.5, 1.0, 1.8, 3.2])
CLASS_SPEND = np.array([0.6, 1.0, 1.6, 2.8])
CLASS_NAMES = np.array(["low", "mid", "high", "vip"], dtype=object)
TIER_LABEL = np.array(["普通", "银卡", "金卡", "钻石"], dtype=object)
CAMPAIGN_EFFECT = 0.05     # treatment response rate − control response rate
CAMPAIGN_BASE = 0.03
#: response (with and without contact) scales with the value class: the better customers
#: respond more, so a response model has something observable to learn
RESPONSE_MULT = np.array([0.5, 1.0, 1.6, 2.4])
RESPONSE_REVENUE_MEAN = 160.0
CHANNEL_EN = np.array(["app", "store", "web"], dtype=object)   # sorted, for searchsorted
CHANNEL_ZH = np.array(["app", "门店", "网站"], dtype=object)
#: usage products the planted telco patterns bill (appended to the telco catalogue file)
INTL_PRODUCTS = (("IDD", "国际长途", "增值", "国际", 1.0, 0.6),
                 ("ROAM", "国际漫游流量", "增值", "国际", 1.0, 0.5))
#: share of customers carrying each planted pattern (and of customers making legitimate
#: daytime international calls, the noise the night rule must not flag)
FRAUD_RATES = {"usage_spike": 0.01, "night_international": 0.01, "shared_id_number": 0.005,
               "chronic_late_payer": 0.015, "daytime_international": 0.03}


@dataclass
class GenerationSummary:
    industry: str
    customers: int
    seed: int
    folder: str
    manifest: str
    files: dict[str, int] = field(default_factory=dict)      # file -> data rows
    dirty: dict[str, int] = field(default_factory=dict)      # kind -> rows planted
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def generate(industry: str, customers: int, seed: int, out: str | Path,
             start: date = date(2023, 1, 1), end: date = date(2025, 12, 31),
             dirty_rate: float = 0.02,
             progress: Callable[[float], None] | None = None,
             chunk: int = CHUNK,
             campaign_effects: tuple[float, float, float] | None = None) -> GenerationSummary:
    """Write a demo company's source exports to ``out/`` and its ground truth to ``out/truth``.

    >>> import tempfile
    >>> s = generate("retail", 300, seed=1, out=tempfile.mkdtemp())
    >>> s.files["customers.csv"] > 300   # planted duplicates come on top
    True
    """
    if industry not in INDUSTRIES:
        raise KehuInputError(_("The '--industry' parameter must be one of {opts}. Got {v!r} "
                               "instead.").format(opts=", ".join(INDUSTRIES), v=industry))
    if customers < 1:
        raise KehuInputError(_("The '--customers' parameter must be an int >= 1. Got {v} "
                               "instead.").format(v=customers))
    if not 0 <= dirty_rate <= 0.5:
        raise KehuInputError(_("The dirty-row rate must be between 0 and 0.5. Got {v}.").format(
            v=dirty_rate))
    if end <= start:
        raise KehuInputError(_("The end date {end} must be after the start date {start}.").format(
            end=end, start=start))
    effects = campaign_effects or (CAMPAIGN_EFFECT,) * 3
    if len(effects) != 3 or not all(-CAMPAIGN_BASE <= e <= 0.3 for e in effects):
        raise KehuInputError(_("The campaign effects must be three response-rate differences "
                               "between {lo} and 0.3. Got {v!r}.").format(lo=-CAMPAIGN_BASE,
                                                                         v=effects))
    return _Company(industry, customers, seed, Path(out), start, end, dirty_rate,
                    chunk, tuple(effects)).run(progress)


class _Company:
    def __init__(self, industry: str, n: int, seed: int, out: Path, start: date, end: date,
                 dirty: float, chunk: int = CHUNK,
                 effects: tuple[float, ...] = (CAMPAIGN_EFFECT,) * 3) -> None:
        self.chunk = chunk
        self.effects = effects
        self.industry, self.n, self.seed, self.out = industry, n, seed, out
        self.start, self.end = np.datetime64(start, "D"), np.datetime64(end, "D")
        self.dirty = dirty
        self.products, self.pairs = CATALOGUES[industry]
        self.truth_rows: list[dict[str, Any]] = []
        #: campaign -> [sum of response multipliers, contacts] over all chunks
        self.response_mult: dict[int, list[float]] = {}
        self.fraud_rows: list[tuple[str, str]] = []     # (customer_id, pattern)
        self._bill_mean: np.ndarray | None = None       # mean monthly bill of the chunk
        #: planted rows, written after all chunks so every other row keeps its position
        self._planted: list[tuple[Any, dict[str, Any]]] = []
        self.dirty_rows: list[tuple[str, int, str, str]] = []
        out.mkdir(parents=True, exist_ok=True)
        (out / "truth").mkdir(exist_ok=True)
        self.n_emp = max(4, n // 1500)
        self.campaign_days = [self.start + int(d) * DAY for d in
                              np.linspace(0, (self.end - self.start).astype(int), 5)[1:4]]

    # -- orchestration ----------------------------------------------------------------------
    def run(self, progress: Callable[[float], None] | None) -> GenerationSummary:
        t0 = time.perf_counter()
        self._open_files()
        self._write_static()
        chunks = range(0, self.n, self.chunk)
        truth_writer: pq.ParquetWriter | None = None
        for k, lo in enumerate(chunks):
            rng = np.random.default_rng([self.seed, k])
            truth = self._chunk(rng, lo, min(self.n, lo + self.chunk) - lo,
                                np.random.default_rng([self.seed, k, 77]))
            table = pa.table(truth)
            if truth_writer is None:
                truth_writer = pq.ParquetWriter(self.out / "truth" / "customers.parquet",
                                                table.schema)
            truth_writer.write_table(table)
            if progress:
                progress(min(1.0, (lo + self.chunk) / self.n))
        if truth_writer is not None:
            truth_writer.close()
        for writer, cols in self._planted:
            writer.append(cols)
        if self.bills_pq is not None:
            self.bills_pq.close()
        contracts_path = self.contracts.close()
        self._write_truth()
        manifest = self._write_manifest(contracts_path)
        summary = GenerationSummary(self.industry, self.n, self.seed, str(self.out), str(manifest))
        for name, w in self.files.items():
            summary.files[contracts_path.name if w is self.contracts else name] = w.rows
        for _f, _r, kind, _c in self.dirty_rows:
            summary.dirty[kind] = summary.dirty.get(kind, 0) + 1
        summary.seconds = round(time.perf_counter() - t0, 2)
        return summary

    def _open_files(self) -> None:
        o = self.out
        signup = {"telco": "入网日期", "bank": "开户日期", "retail": "注册日期"}[self.industry]
        self.signup_header = signup
        self.customers = CsvAppender(o / "customers.csv", [
            "客户编号", "姓名", "性别", "出生日期", "手机号码", "证件号码", "城市", "地区", signup,
            "客户经理", "会员等级", "职业", "月收入", "是否实名"], encoding="gbk")
        self.files: dict[str, Any] = {"customers.csv": self.customers}
        if self.industry == "telco":
            self.bills_pq: ParquetAppender | None = ParquetAppender(o / "bills.parquet", pa.schema([
                ("bill id", pa.string()), ("customer id", pa.string()),
                ("date", pa.timestamp("s")), ("product id", pa.string()),
                ("amount", pa.float64()), ("cost", pa.float64()), ("kind", pa.string()),
                ("channel", pa.string())]))
            self.files["bills.parquet"] = self.bills_pq
            self.tx: Any = self.bills_pq
        else:
            self.bills_pq = None
            self.tx = CsvAppender(o / "transactions.csv", [
                "交易流水号", "订单号", "客户编号", "交易时间", "产品编号", "数量", "金额", "成本",
                "折扣金额", "渠道", "门店编号"], bom=True)
            self.files["transactions.csv"] = self.tx
        self.contracts = XlsxOrCsv(o / "contracts.xlsx", [
            "合约编号", "客户编号", "产品编号", "生效日期", "到期日", "状态", "月费", "余额",
            "自动续约"])
        self.files["contracts.xlsx"] = self.contracts
        self.interactions = JsonLinesAppender(o / "interactions.jsonl")
        self.files["interactions.jsonl"] = self.interactions
        self.tickets = CsvAppender(o / "tickets.csv", [
            "ticket_id", "customer_id", "opened", "resolved", "kind", "category", "status",
            "satisfaction", "channel", "employee_id"])
        self.files["tickets.csv"] = self.tickets
        if self.industry != "retail":
            self.payments: CsvAppender | None = CsvAppender(o / "payments.csv", [
                "invoice id", "customer id", "invoice date", "due date", "paid date",
                "amount due", "amount paid", "method"])
            self.files["payments.csv"] = self.payments
        else:
            self.payments = None
        self.contacts = CsvAppender(o / "campaign_contacts.csv", [
            "contact id", "campaign id", "customer id", "contact time", "group", "channel",
            "offer"])
        self.responses = CsvAppender(o / "responses.csv", [
            "response id", "campaign id", "customer id", "response time", "response type",
            "revenue"])
        self.surveys = CsvAppender(o / "surveys.csv", [
            "survey id", "customer id", "survey time", "survey type", "score", "comment"])
        self.referrals = CsvAppender(o / "referrals.csv", [
            "推荐编号", "推荐人编号", "被推荐人编号", "推荐日期", "转化日期", "渠道"])
        self.churn = CsvAppender(o / "churn_events.csv", [
            "流失编号", "客户编号", "流失日期", "流失原因", "流失去向", "流失类型"])
        for name, w in (("campaign_contacts.csv", self.contacts),
                        ("responses.csv", self.responses), ("surveys.csv", self.surveys),
                        ("referrals.csv", self.referrals), ("churn_events.csv", self.churn)):
            self.files[name] = w

    def _write_static(self) -> None:
        rng = np.random.default_rng([self.seed, 10**6])
        n = self.n_emp
        emp_names = nm.sample_names(rng, n)["name"]
        city, region, _ = nm.sample_cities(rng, n)
        emp = CsvAppender(self.out / "employees.csv", ["employee_id", "name", "team", "role",
                                                       "region"])
        emp.append({"employee_id": [f"E{i:04d}" for i in range(n)], "name": emp_names,
                    "team": city + "团队", "role": np.where(np.arange(n) % 6 == 0, "manager",
                                                           "account_manager"),
                    "region": region})
        self.files["employees.csv"] = emp
        prod = CsvAppender(self.out / "products.csv",
                           ["产品编号", "产品名称", "类别", "小类", "单价", "成本价"])
        ps = self.products
        prod.append({"产品编号": [p.product_id for p in ps], "产品名称": [p.name for p in ps],
                     "类别": [p.category for p in ps], "小类": [p.subcategory for p in ps],
                     "单价": np.array([p.price for p in ps]),
                     "成本价": np.array([p.cost for p in ps])})
        if self.industry == "telco":
            prod.append({"产品编号": [x[0] for x in INTL_PRODUCTS],
                         "产品名称": [x[1] for x in INTL_PRODUCTS],
                         "类别": [x[2] for x in INTL_PRODUCTS],
                         "小类": [x[3] for x in INTL_PRODUCTS],
                         "单价": np.array([x[4] for x in INTL_PRODUCTS]),
                         "成本价": np.array([x[5] for x in INTL_PRODUCTS])})
        self.files["products.csv"] = prod
        camp = CsvAppender(self.out / "campaigns.csv", ["campaign id", "campaign name", "channel",
                                                        "goal", "start date", "end date",
                                                        "fixed cost", "cost per contact"])
        days = self.campaign_days
        camp.append({"campaign id": ["CMP1", "CMP2", "CMP3"],
                     "campaign name": ["春季交叉销售", "沉睡客户唤醒", "高价值客户关怀"],
                     "channel": ["sms", "phone", "app"],
                     "goal": ["cross_sell", "reactivation", "retention"],
                     "start date": np.array(days), "end date": np.array([d + 30 * DAY
                                                                         for d in days]),
                     "fixed cost": np.array([5000.0, 8000.0, 3000.0]),
                     "cost per contact": np.array([0.1, 3.0, 0.05])})
        self.files["campaigns.csv"] = camp

    # -- one chunk of customers -------------------------------------------------------------
    def _chunk(self, rng: np.random.Generator, lo: int, n: int,
               prng: np.random.Generator) -> dict[str, Any]:
        ids = np.array([f"C{i:08d}" for i in range(lo, lo + n)], dtype=object)
        cls = rng.choice(4, n, p=CLASS_P)
        span = (self.end - self.start).astype(int)
        signup = self.start - 730 * DAY + rng.integers(0, 730 + span - 60, n) * DAY
        rate = rng.gamma(1.2, 1 / 1.2, n) * CLASS_RATE[cls]
        spend = rng.lognormal(0, 0.35, n) * CLASS_SPEND[cls]
        grumpy = rng.gamma(0.7, 1.0, n)  # propensity to complain
        hazard = {"retail": 0.14, "telco": 0.09, "bank": 0.05}[self.industry] * np.exp(
            0.7 * grumpy - 0.25 * cls)
        life = rng.exponential(365.0 / hazard).astype(int)
        churn_at = signup + np.maximum(life, 30) * DAY
        churned = churn_at <= self.end
        churn_at = np.where(churned, churn_at, np.datetime64("NaT"))
        active_end = np.where(churned, churn_at, self.end)
        active_start = np.maximum(signup, self.start)
        alive_in_window = active_end > active_start
        # profile
        names = nm.sample_names(rng, n)
        city, region, city_idx = nm.sample_cities(rng, n)
        birth = np.datetime64("1950-01-01") + rng.integers(0, 365 * 52, n) * DAY
        phone = nm.phones(rng, n)
        idno = nm.id_numbers(rng, city_idx, birth)
        gender = np.where(rng.random(n) < 0.5, "男", "女")
        manager = np.array([f"E{i:04d}" for i in rng.integers(0, self.n_emp, n)], dtype=object)
        manager[cls < 2] = None
        income = np.round(rng.lognormal(8.6, 0.45, n) * (1 + 0.4 * cls), -2)
        used = self._write_customers(rng, ids, names, gender, birth, phone, idno, city, region,
                                     signup, manager, cls, income)
        usage_before, usage_last = self._write_transactions(
            rng, ids, cls, rate, spend, active_start, active_end, churned, alive_in_window)
        complaints = self._write_service(rng, ids, grumpy, churned, active_start, active_end,
                                         alive_in_window)
        self._write_contracts(rng, ids, signup, churned, churn_at)
        if self.payments is not None:
            self._write_payments(rng, ids, spend, churned, active_start, active_end,
                                 alive_in_window)
        self._write_campaigns(rng, ids, active_start, active_end, lo, cls)
        self._write_surveys_referrals(rng, ids, complaints, signup, active_start, active_end,
                                      alive_in_window, lo)
        self._write_churn(rng, ids, churned & alive_in_window, churn_at, complaints, spend)
        if self.industry != "retail":
            self._plant_fraud(prng, ids, used, idno, birth, city, region, spend,
                              alive_in_window & ~churned & (active_start < self.end - 400 * DAY))
        return {"customer_id": ids.astype(str), "value_class": CLASS_NAMES[cls].astype(str),
                "purchase_rate": rate, "spend_level": spend, "complaint_propensity": grumpy,
                "churn_hazard_per_year": hazard, "churned": churned & alive_in_window,
                "churn_date": churn_at.astype("datetime64[D]"),
                "usage_before": usage_before, "usage_last_90d": usage_last}

    def _write_customers(self, rng: np.random.Generator, ids: np.ndarray, names: dict,
                         gender: np.ndarray, birth: np.ndarray, phone: np.ndarray,
                         idno: np.ndarray, city: np.ndarray, region: np.ndarray,
                         signup: np.ndarray, manager: np.ndarray, cls: np.ndarray,
                         income: np.ndarray) -> np.ndarray:
        """Write the chunk's customers; returns the rows made dirty or duplicated."""
        n = len(ids)
        birth_s = np.datetime_as_string(birth, unit="D").astype(object)
        signup_s = np.datetime_as_string(signup, unit="D").astype(object)
        if self.industry == "telco":  # the billing system writes 2024/3/5
            signup_s = np.array([f"{d.year}/{d.month}/{d.day}" for d in signup.astype(object)],
                                dtype=object)
        cols: dict[str, Any] = {
            "客户编号": ids.copy(), "姓名": names["name"], "性别": gender, "出生日期": birth_s,
            "手机号码": phone, "证件号码": idno, "城市": city, "地区": region,
            self.signup_header: signup_s, "客户经理": manager, "会员等级": TIER_LABEL[cls],
            "职业": np.array(nm.OCCUPATIONS, dtype=object)[rng.integers(0, 10, n)],
            "月收入": income, "是否实名": np.where(rng.random(n) < 0.93, "是", "否"),
        }
        # planted rejects
        bad = self._pick(rng, n, self.dirty * 0.15)
        cols["出生日期"][bad] = np.where(rng.random(len(bad)) < 0.5, "1985-02-30", "not a date")
        fut = self._pick(rng, n, self.dirty * 0.1, exclude=bad)
        cols[self.signup_header][fut] = "2099-01-01"
        blank = self._pick(rng, n, self.dirty * 0.05, exclude=np.concatenate([bad, fut]))
        cols["客户编号"][blank] = ""
        first = self.customers.append(cols)
        for idx, kind, col in ((bad, "bad_date", "出生日期"), (fut, "future_date",
                                                              self.signup_header),
                               (blank, "missing_id", "客户编号")):
            for i in idx:
                self.dirty_rows.append(("customers.csv", first + int(i), kind, col))
        # planted duplicates: the same person entered again by another system
        dup = self._pick(rng, n, self.dirty * 0.5, exclude=np.concatenate([bad, fut, blank]))
        if len(dup):
            variant = rng.integers(0, 3, len(dup))
            dn = np.where(variant == 0, names["traditional"][dup],
                          np.where(variant == 1, names["pinyin"][dup], names["name"][dup]))
            dphone = np.array([nm.format_phone_variant(p, int(k)) for p, k in
                               zip(phone[dup], rng.integers(0, 2, len(dup)), strict=True)],
                              dtype=object)
            dcols = {k: (v[dup] if isinstance(v, np.ndarray) else v) for k, v in cols.items()}
            dcols["客户编号"] = np.array([f"W{i[1:]}" for i in ids[dup]], dtype=object)
            dcols["姓名"] = dn
            dcols["手机号码"] = dphone
            dcols["出生日期"] = birth_s[dup]
            dcols[self.signup_header] = signup_s[dup]
            dcols["客户经理"] = np.full(len(dup), None, dtype=object)
            first = self.customers.append(dcols)
            for j, i in enumerate(dup):
                self.dirty_rows.append(("customers.csv", first + j, "duplicate_customer",
                                        "客户编号"))
                self.truth_rows.append({"duplicate_id": f"W{ids[i][1:]}",
                                        "duplicate_of": str(ids[i])})
        return np.concatenate([bad, fut, blank, dup]).astype(int)

    @staticmethod
    def _pick(rng: np.random.Generator, n: int, frac: float,
              exclude: np.ndarray | None = None) -> np.ndarray:
        k = int(rng.binomial(n, min(max(frac, 0.0), 1.0))) if n else 0
        pool = np.setdiff1d(np.arange(n), exclude) if exclude is not None and len(exclude) \
            else np.arange(n)
        k = min(k, len(pool))
        return np.sort(rng.choice(pool, k, replace=False)) if k else np.array([], dtype=int)

    # -- transactions -----------------------------------------------------------------------
    def _events(self, rng: np.random.Generator, per_day: np.ndarray, a: np.ndarray,
                b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poisson purchase times in [a, b) per customer: (customer index, time)."""
        days = np.maximum((b - a).astype("timedelta64[D]").astype(int), 0)
        counts = rng.poisson(per_day * days)
        idx = np.repeat(np.arange(len(a)), counts)
        offs = rng.random(len(idx)) * np.repeat(days, counts)
        secs = (offs * 86400).astype(np.int64)
        t = a[idx].astype("datetime64[s]") + secs.astype("timedelta64[s]")
        return idx, t

    def _write_transactions(self, rng: np.random.Generator, ids: np.ndarray, cls: np.ndarray,
                            rate: np.ndarray, spend: np.ndarray, a: np.ndarray, b: np.ndarray,
                            churned: np.ndarray, alive: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
        n = len(ids)
        decline_start = np.where(churned, np.maximum(a, b - 90 * DAY), b)
        b1 = np.where(alive, decline_start, a)
        b2 = np.where(alive, b, a)
        base = {"retail": 1 / 30, "telco": 1 / 90, "bank": 1 / 20}[self.industry]
        i1, t1 = self._events(rng, rate * base, a, b1)
        i2, t2 = self._events(rng, rate * base * 0.25, decline_start, b2)
        idx = np.concatenate([i1, i2])
        when = np.concatenate([t1, t2])
        order = np.lexsort((when, idx))
        idx, when = idx[order], when[order]
        usage_before = np.bincount(i1, minlength=n) / np.maximum(
            (b1 - a).astype("timedelta64[D]").astype(int), 1)
        usage_last = np.bincount(i2, minlength=n) / np.maximum(
            (b2 - decline_start).astype("timedelta64[D]").astype(int), 1)
        ps = self.products
        price = np.array([p.price if p.price else 100.0 for p in ps])
        cost = np.array([p.cost for p in ps])
        pid = np.array([p.product_id for p in ps], dtype=object)
        k = len(idx)
        fav = rng.integers(0, len(ps), n)
        prod = np.where(rng.random(k) < 0.5, fav[idx], rng.integers(0, len(ps), k))
        # affinity: a basket with one of a pair often has the other
        pos = {p.product_id: j for j, p in enumerate(ps)}
        partner = np.full(len(ps), -1)
        for x, y in self.pairs:
            partner[pos[x]], partner[pos[y]] = pos[y], pos[x]
        add = (partner[prod] >= 0) & (rng.random(k) < 0.55)
        order_no = np.arange(k)
        lines_idx = np.concatenate([idx, idx[add]])
        lines_prod = np.concatenate([prod, partner[prod[add]]])
        lines_when = np.concatenate([when, when[add]])
        lines_order = np.concatenate([order_no, order_no[add]])
        m = len(lines_idx)
        qty = 1 + rng.poisson(0.4 * spend[lines_idx])
        disc = np.where(rng.random(m) < 0.2, 0.1, 0.0)
        amount = np.round(price[lines_prod] * qty * (1 - disc) * np.where(
            self.industry == "retail", 1.0, spend[lines_idx]), 2)
        line_cost = np.round(cost[lines_prod] * qty, 2)
        order_channel = np.array(["store", "web", "app"], dtype=object)[
            np.minimum(rng.choice(3, k, p=[0.5, 0.3, 0.2]) + (cls[idx] >= 3), 2)]
        channel = order_channel[lines_order]
        tag = ids[lines_idx]
        tx_id = np.array([f"{c}-{o:06d}-{p}" for c, o, p in
                          zip(tag, lines_order, lines_prod, strict=True)], dtype=object)
        cust = ids[lines_idx].copy()
        # planted rejects
        neg = self._pick(rng, m, self.dirty * 0.25)
        unknown = self._pick(rng, m, self.dirty * 0.15, exclude=neg)
        bad_date = self._pick(rng, m, self.dirty * 0.15, exclude=np.concatenate([neg, unknown]))
        neg_qty = self._pick(rng, m, self.dirty * 0.1,
                             exclude=np.concatenate([neg, unknown, bad_date]))
        amount[neg] = -np.abs(amount[neg]) - 1
        cust[unknown] = "X" + np.char.zfill(rng.integers(0, 10**7, len(unknown)).astype(str),
                                            8).astype(object)
        qty[neg_qty] = -qty[neg_qty]
        if self.industry == "telco":
            cols = {"bill id": tx_id, "customer id": cust,
                    "date": lines_when.astype("datetime64[s]"), "product id": pid[lines_prod],
                    "amount": amount, "cost": line_cost,
                    "kind": np.full(m, "purchase", dtype=object), "channel": channel}
            cols["date"][bad_date] = np.datetime64("2099-03-01T00:00:00")
            bills = self._monthly_bills(rng, ids, cls, spend, a, b, churned, alive,
                                        decline_start)
            cols = {k: np.concatenate([v, bills[k]]) for k, v in cols.items()}
            first = self.tx.append(cols)
            fname = "bills.parquet"
            date_kind = "future_date"
        else:
            when_s = np.datetime_as_string(lines_when, unit="s").astype(object)
            when_s = np.char.replace(when_s.astype(str), "T", " ").astype(object)
            when_s[bad_date] = "2023-13-45 10:00:00"
            amt_s = np.array([f"¥{v:,.2f}" for v in amount], dtype=object) \
                if self.industry == "retail" else amount
            cols = {"交易流水号": tx_id, "订单号": np.array([f"O-{t}-{o}" for t, o in
                                                         zip(tag, lines_order, strict=True)],
                                                        dtype=object),
                    "客户编号": cust, "交易时间": when_s, "产品编号": pid[lines_prod], "数量": qty,
                    "金额": amt_s, "成本": line_cost, "折扣金额": np.round(
                        price[lines_prod] * qty * disc, 2),
                    "渠道": CHANNEL_ZH[np.searchsorted(CHANNEL_EN, channel)] if m else channel,
                    "门店编号": _only_where(channel == "store", np.array(
                        [f"S{j:03d}" for j in rng.integers(0, 40, k)], dtype=object)[
                            lines_order])}
            first = self.tx.append(cols)
            fname = "transactions.csv"
            date_kind = "bad_date"
        for arr, kind in ((neg, "negative_amount"), (unknown, "unknown_customer"),
                          (bad_date, date_kind), (neg_qty, "negative_quantity")):
            for i in arr:
                self.dirty_rows.append((fname, first + int(i), kind, ""))
        return usage_before, usage_last

    def _monthly_bills(self, rng: np.random.Generator, ids: np.ndarray, cls: np.ndarray,
                       spend: np.ndarray, a: np.ndarray, b: np.ndarray, churned: np.ndarray,
                       alive: np.ndarray, decline_start: np.ndarray) -> dict[str, np.ndarray]:
        """One bill per customer per month: the plan's fee plus usage, which falls in the
        months before churn."""
        plans = [p for p in self.products if p.category == "套餐"]
        fee = np.array([p.price for p in plans])
        plan = np.minimum(cls + rng.integers(0, 2, len(ids)), len(plans) - 1)
        months = np.maximum((b.astype("datetime64[M]") - a.astype("datetime64[M]"))
                            .astype(int), 0) * alive
        idx = np.repeat(np.arange(len(ids)), months)
        seq = np.arange(len(idx)) - np.repeat(np.cumsum(months) - months, months)
        when = ((a.astype("datetime64[M]")[idx] + (seq + 1).astype("timedelta64[M]"))
                .astype("datetime64[D]")).astype("datetime64[s]")
        falling = churned[idx] & (when >= decline_start[idx].astype("datetime64[s]"))
        usage = rng.gamma(2.0, 12.0 * spend[idx]) * np.where(falling, 0.35, 1.0)
        amount = np.round(fee[plan[idx]] + usage, 2)
        self._bill_mean = np.bincount(idx, weights=amount, minlength=len(ids)) / np.maximum(
            np.bincount(idx, minlength=len(ids)), 1)
        return {"bill id": np.array([f"B{ids[i][1:]}-{q:03d}" for i, q in
                                     zip(idx, seq, strict=True)], dtype=object),
                "customer id": ids[idx], "date": when,
                "product id": np.array([plans[j].product_id for j in plan[idx]], dtype=object),
                "amount": amount, "cost": np.round(amount * 0.45, 2),
                "kind": np.full(len(idx), "bill", dtype=object),
                "channel": np.full(len(idx), None, dtype=object)}

    # -- service, contracts, payments ------------------------------------------------------
    def _write_service(self, rng: np.random.Generator, ids: np.ndarray, grumpy: np.ndarray,
                       churned: np.ndarray, a: np.ndarray, b: np.ndarray,
                       alive: np.ndarray) -> np.ndarray:
        n = len(ids)
        years = np.maximum((b - a).astype("timedelta64[D]").astype(int), 0) / 365.0
        lam = np.where(alive, grumpy * 0.6 * years, 0.0)
        i1, t1 = self._events(rng, lam / np.maximum(years * 365, 1), a, np.where(alive, b, a))
        late_a = np.maximum(a, b - 120 * DAY)
        i2, t2 = self._events(rng, np.where(churned & alive, 1.2 / 120, 0.0), late_a,
                              np.where(alive, b, late_a))
        idx = np.concatenate([i1, i2])
        opened = np.concatenate([t1, t2])
        k = len(idx)
        complaints = np.bincount(idx, minlength=n)
        resolved_after = (rng.exponential(2.5, k) * 86400).astype(np.int64)
        unresolved = rng.random(k) < 0.08 + 0.2 * churned[idx]
        resolved = opened + resolved_after.astype("timedelta64[s]")
        resolved = np.where(unresolved | (resolved > self.end.astype("datetime64[s]")),
                            np.datetime64("NaT"), resolved)
        sat = np.clip(np.round(4.2 - 1.5 * churned[idx] - 0.3 * grumpy[idx]
                               + rng.normal(0, 0.8, k)), 1, 5)
        sat_txt = np.where(np.isnat(resolved), "", sat.astype(int).astype(str))
        cats = np.array(["账单疑问", "网络/服务质量", "产品质量", "服务态度", "办理业务"],
                        dtype=object)
        kind = np.where(rng.random(k) < 0.65, "投诉", "咨询")
        self.tickets.append({
            "ticket_id": np.array([f"TK{ids[i][1:]}-{j}" for j, i in enumerate(idx)],
                                  dtype=object),
            "customer_id": ids[idx], "opened": opened, "resolved": resolved, "kind": kind,
            "category": cats[rng.integers(0, len(cats), k)],
            "status": np.where(np.isnat(resolved), "处理中", "已解决"), "satisfaction": sat_txt,
            "channel": np.array(["hotline", "app", "store"], dtype=object)[
                rng.integers(0, 3, k)],
            "employee_id": np.array([f"E{j:04d}" for j in rng.integers(0, self.n_emp, k)],
                                    dtype=object)})
        # interactions: contacts on every channel (enterprise memory)
        j1, u1 = self._events(rng, np.where(alive, 1 / 150, 0.0) * (1 + churned), a,
                              np.where(alive, b, a))
        m = len(j1)
        chans = np.array(["hotline", "sms", "app", "visit", "store", "wechat"], dtype=object)
        types = np.array(["咨询", "营销", "回访", "办理", "投诉"], dtype=object)
        self.interactions.append({
            "接触编号": [f"I{ids[i][1:]}-{q}" for q, i in enumerate(j1)],
            "客户编号": ids[j1].tolist(),
            "接触时间": [str(t).replace("T", " ") for t in u1],
            "渠道": chans[rng.integers(0, len(chans), m)].tolist(),
            "类型": types[rng.integers(0, len(types), m)].tolist(),
            "方向": np.where(rng.random(m) < 0.6, "呼入", "呼出").tolist(),
            "结果": np.where(rng.random(m) < 0.8, "已处理", "待跟进").tolist(),
            "工号": [f"E{q:04d}" for q in rng.integers(0, self.n_emp, m)],
        })
        return complaints

    def _write_contracts(self, rng: np.random.Generator, ids: np.ndarray, signup: np.ndarray,
                         churned: np.ndarray, churn_at: np.ndarray) -> None:
        n = len(ids)
        months = {"telco": (12, 24), "bank": (3, 12, 36), "retail": (12,)}[self.industry]
        term = np.array(months)[rng.integers(0, len(months), n)]
        start = signup
        end = (start.astype("datetime64[M]") + term.astype("timedelta64[M]")).astype(
            "datetime64[D]") + (start - start.astype("datetime64[M]").astype("datetime64[D]"))
        status = np.where(churned & (churn_at <= end), "离网" if self.industry == "telco"
                          else "取消", np.where(end < self.end, "已续约", "有效"))
        prods = [p for p in self.products if p.category in ("套餐", "存款")] or self.products[:1]
        pick = rng.integers(0, len(prods), n)
        fee = np.array([p.price for p in prods])[pick]
        balance = np.where(self.industry == "bank", np.round(rng.lognormal(10, 1, n), -2), 0.0)
        self.contracts.append({
            "合约编号": [f"K{i[1:]}" for i in ids], "客户编号": ids.tolist(),
            "产品编号": [prods[j].product_id for j in pick],
            "生效日期": [str(d) for d in start], "到期日": [str(d) for d in end],
            "状态": status.tolist(), "月费": fee.tolist(), "余额": balance.tolist(),
            "自动续约": np.where(rng.random(n) < 0.5, "是", "否").tolist()})

    def _write_payments(self, rng: np.random.Generator, ids: np.ndarray, spend: np.ndarray,
                        churned: np.ndarray, a: np.ndarray, b: np.ndarray,
                        alive: np.ndarray) -> None:
        months = np.maximum((b.astype("datetime64[M]") - a.astype("datetime64[M]"))
                            .astype(int), 0) * alive
        idx = np.repeat(np.arange(len(ids)), months)
        first_m = a.astype("datetime64[M]")[idx]
        k = len(idx)
        seq = np.arange(k) - np.repeat(np.cumsum(months) - months, months)
        inv = (first_m + seq.astype("timedelta64[M]")).astype("datetime64[D]") + 1 * DAY
        due = inv + 20 * DAY
        near_end = (b[idx] - inv).astype("timedelta64[D]").astype(int) < 120
        late_p = np.where(churned[idx] & near_end, 0.45, 0.05)
        delay = np.where(rng.random(k) < late_p, rng.integers(21, 60, k), rng.integers(0, 18, k))
        paid = inv + delay * DAY
        unpaid = (paid > self.end) | (rng.random(k) < 0.01)
        due_amt = np.round(60 * spend[idx] * rng.lognormal(0, 0.2, k), 2)
        self.payments.append({  # type: ignore[union-attr]
            "invoice id": np.array([f"INV{ids[i][1:]}-{s:03d}" for i, s in
                                    zip(idx, seq, strict=True)], dtype=object),
            "customer id": ids[idx], "invoice date": inv, "due date": due,
            "paid date": np.where(unpaid, np.datetime64("NaT"), paid),
            "amount due": due_amt, "amount paid": np.where(unpaid, 0.0, due_amt),
            "method": np.array(["银行代扣", "微信", "支付宝", "营业厅"], dtype=object)[
                rng.integers(0, 4, k)]})

    # -- planted fraud and arrears ---------------------------------------------------------
    def _plant_fraud(self, rng: np.random.Generator, ids: np.ndarray, used: np.ndarray,
                     idno: np.ndarray, birth: np.ndarray, city: np.ndarray,
                     region: np.ndarray, spend: np.ndarray, eligible: np.ndarray) -> None:
        """Add the rows of a few fraud and arrears patterns for customers active to the end
        (own random stream, rows added only). Telco: usage spikes, night international calls,
        accounts sharing an ID number, chronic late payers; bank: the last two."""
        n = len(ids)
        pool = rng.permutation(np.setdiff1d(np.flatnonzero(eligible), used))
        patterns = ["shared_id_number", "chronic_late_payer"]
        if self.industry == "telco":
            patterns = ["usage_spike", "night_international", *patterns,
                        "daytime_international"]
        picked: dict[str, np.ndarray] = {}
        at = 0
        for pat in patterns:
            k = int(rng.binomial(n, FRAUD_RATES[pat]))
            picked[pat] = np.sort(pool[at:at + k])
            at += k
        for pat, rows in picked.items():
            if pat != "daytime_international":
                self.fraud_rows.extend((str(ids[i]), pat) for i in rows)
        end = self.end.astype("datetime64[s]")
        lines: list[tuple[int, str, np.datetime64, float]] = []  # customer, product, time, amount
        for i in picked.get("usage_spike", []):
            m = int(rng.integers(3, 8))
            base = float(self._bill_mean[i]) if self._bill_mean is not None else 100.0
            total = rng.uniform(10, 20) * base
            for j, share in enumerate(rng.dirichlet(np.ones(m))):
                t = end - int(rng.integers(1, 29)) * 86400 + int(rng.integers(8, 22)) * 3600 \
                    + int(rng.integers(0, 3600))
                lines.append((int(i), "ROAM", t + j, round(float(total * share), 2)))
        for i in picked.get("night_international", []):
            for _j in range(int(rng.integers(4, 10))):
                t = end - int(rng.integers(1, 29)) * 86400 + int(rng.integers(0, 5)) * 3600 \
                    + int(rng.integers(0, 3600))
                lines.append((int(i), "IDD", t, round(float(rng.uniform(8, 40)), 2)))
        for i in picked.get("daytime_international", []):
            for j in range(int(rng.integers(1, 4))):
                hour = int(rng.integers(0, 5)) if j == 0 and rng.random() < 0.2 \
                    else int(rng.integers(8, 21))
                t = end - int(rng.integers(1, 90)) * 86400 + hour * 3600 \
                    + int(rng.integers(0, 3600))
                lines.append((int(i), "IDD", t, round(float(rng.uniform(5, 30)), 2)))
        if lines:
            amount = np.array([x[3] for x in lines])
            self._planted.append((self.tx, {
                "bill id": np.array([f"X{ids[c][1:]}-{q:03d}" for q, (c, *_r) in
                                     enumerate(lines)], dtype=object),
                "customer id": np.array([ids[x[0]] for x in lines], dtype=object),
                "date": np.array([x[2] for x in lines], dtype="datetime64[s]"),
                "product id": np.array([x[1] for x in lines], dtype=object),
                "amount": amount, "cost": np.round(amount * 0.4, 2),
                "kind": np.full(len(lines), "purchase", dtype=object),
                "channel": np.full(len(lines), None, dtype=object)}))
        self._plant_shared_ids(rng, ids, picked["shared_id_number"], idno, birth, city, region)
        self._plant_late_payer(rng, ids, picked["chronic_late_payer"])

    def _plant_shared_ids(self, rng: np.random.Generator, ids: np.ndarray, base: np.ndarray,
                          idno: np.ndarray, birth: np.ndarray, city: np.ndarray,
                          region: np.ndarray) -> None:
        """2–4 new accounts opened recently under an existing customer's ID number, with other
        names and phones (unlike the planted duplicates, which are the same person)."""
        if not len(base):
            return
        src = np.repeat(base, rng.integers(2, 5, len(base)))
        m = len(src)
        seq = np.arange(m) - np.searchsorted(src, src)
        new_ids = np.array([f"F{ids[i][1:]}{q}" for i, q in zip(src, seq, strict=True)],
                           dtype=object)
        signup = self.end - rng.integers(5, 120, m) * DAY
        signup_s = np.array([f"{d.year}/{d.month}/{d.day}" if self.industry == "telco"
                             else d.isoformat() for d in signup.astype(object)], dtype=object)
        self._planted.append((self.customers, {
            "客户编号": new_ids, "姓名": nm.sample_names(rng, m)["name"],
            "性别": np.where(rng.random(m) < 0.5, "男", "女"),
            "出生日期": np.datetime_as_string(birth[src], unit="D").astype(object),
            "手机号码": nm.phones(rng, m), "证件号码": idno[src], "城市": city[src],
            "地区": region[src], self.signup_header: signup_s,
            "客户经理": np.full(m, None, dtype=object),
            "会员等级": np.full(m, TIER_LABEL[0], dtype=object),
            "职业": np.array(nm.OCCUPATIONS, dtype=object)[rng.integers(0, 10, m)],
            "月收入": np.round(rng.lognormal(8.3, 0.4, m), -2),
            "是否实名": np.full(m, "否", dtype=object)}))
        self.fraud_rows.extend((str(x), "shared_id_number") for x in new_ids)

    def _plant_late_payer(self, rng: np.random.Generator, ids: np.ndarray,
                          who: np.ndarray) -> None:
        """A monthly instalment plan over the last year, paid late most months (some in part,
        the latest ones not at all)."""
        if self.payments is None or not len(who):
            return
        months = 12
        idx = np.repeat(who, months)
        seq = np.tile(np.arange(months), len(who))
        last = self.end.astype("datetime64[M]") - 1
        inv = (last - (months - 1) + seq).astype("datetime64[D]") + 1 * DAY
        due = inv + 20 * DAY
        k = len(idx)
        late = rng.random(k) < 0.92
        paid = np.where(late, due + rng.integers(10, 100, k) * DAY,
                        inv + rng.integers(0, 18, k) * DAY)
        unpaid = paid > self.end
        amt = np.round(rng.uniform(60, 200, k), 2)
        part = late & ~unpaid & (rng.random(k) < 0.25)
        got = np.where(unpaid, 0.0, np.where(part, np.round(amt * rng.uniform(0.4, 0.9, k), 2),
                                             amt))
        self._planted.append((self.payments, {
            "invoice id": np.array([f"INS{ids[i][1:]}-{s:02d}" for i, s in
                                    zip(idx, seq, strict=True)], dtype=object),
            "customer id": ids[idx], "invoice date": inv, "due date": due,
            "paid date": np.where(unpaid, np.datetime64("NaT"), paid),
            "amount due": amt, "amount paid": got,
            "method": np.array(["银行代扣", "微信", "支付宝", "营业厅"], dtype=object)[
                rng.integers(0, 4, k)]}))

    # -- campaigns, surveys, referrals, churn -----------------------------------------------
    def _write_campaigns(self, rng: np.random.Generator, ids: np.ndarray, a: np.ndarray,
                         b: np.ndarray, lo: int, cls: np.ndarray) -> None:
        for c, day in enumerate(self.campaign_days, start=1):
            active = np.flatnonzero((a <= day) & (b > day))
            chosen = active[rng.random(len(active)) < 0.2]
            crng = np.random.default_rng([self.seed, 777, c, lo])  # the recorded control seed
            control = crng.random(len(chosen)) < 0.10
            mult = RESPONSE_MULT[cls[chosen]]
            acc = self.response_mult.setdefault(c, [0.0, 0])
            acc[0] += float(mult.sum())
            acc[1] += len(chosen)
            p = mult * np.where(control, CAMPAIGN_BASE, CAMPAIGN_BASE + self.effects[c - 1])
            responded = rng.random(len(chosen)) < p
            when = day.astype("datetime64[s]") + (9 * 3600 + rng.integers(0, 3600, len(chosen))
                                              ).astype("timedelta64[s]")
            cid = ids[chosen]
            self.contacts.append({
                "contact id": np.array([f"CT{c}-{x[1:]}" for x in cid], dtype=object),
                "campaign id": np.full(len(cid), f"CMP{c}", dtype=object), "customer id": cid,
                "contact time": when, "group": np.where(control, "control", "treatment"),
                "channel": np.full(len(cid), ["sms", "hotline", "app"][c - 1], dtype=object),
                "offer": np.full(len(cid), ["满200减30", "回归礼包", "专属客户经理"][c - 1],
                                 dtype=object)})
            r = np.flatnonzero(responded)
            self.responses.append({
                "response id": np.array([f"RS{c}-{x[1:]}" for x in cid[r]], dtype=object),
                "campaign id": np.full(len(r), f"CMP{c}", dtype=object),
                "customer id": cid[r],
                "response time": when[r] + (rng.integers(1, 20, len(r)) * 86400).astype(
                    "timedelta64[s]"),
                "response type": np.full(len(r), "purchase", dtype=object),
                "revenue": np.round(rng.gamma(2.0, RESPONSE_REVENUE_MEAN / 2, len(r)), 2)})

    def _write_surveys_referrals(self, rng: np.random.Generator, ids: np.ndarray,
                                 complaints: np.ndarray, signup: np.ndarray, a: np.ndarray,
                                 b: np.ndarray, alive: np.ndarray, lo: int) -> None:
        n = len(ids)
        asked = np.flatnonzero(alive & (rng.random(n) < 0.2))
        score = np.clip(np.round(8.3 - 1.2 * complaints[asked] + rng.normal(0, 1.5, len(asked))),
                        0, 10).astype(int)
        when = a[asked] + (rng.random(len(asked)) * np.maximum(
            (b[asked] - a[asked]).astype(int), 1)).astype(int) * DAY
        self.surveys.append({
            "survey id": np.array([f"SV{x[1:]}" for x in ids[asked]], dtype=object),
            "customer id": ids[asked], "survey time": when,
            "survey type": np.full(len(asked), "nps", dtype=object), "score": score,
            "comment": np.where(score <= 6, "希望改进服务", "")})
        referred = np.flatnonzero((np.arange(n) > 10) & (rng.random(n) < 0.05))
        referrer = (rng.random(len(referred)) * referred).astype(int)
        ok = signup[referrer] < signup[referred]
        referred, referrer = referred[ok], referrer[ok]
        self.referrals.append({
            "推荐编号": np.array([f"RF{x[1:]}" for x in ids[referred]], dtype=object),
            "推荐人编号": ids[referrer], "被推荐人编号": ids[referred],
            "推荐日期": signup[referred] - rng.integers(1, 30, len(referred)) * DAY,
            "转化日期": signup[referred],
            "渠道": np.full(len(referred), "wechat", dtype=object)})

    def _write_churn(self, rng: np.random.Generator, ids: np.ndarray, churned: np.ndarray,
                     churn_at: np.ndarray, complaints: np.ndarray, spend: np.ndarray) -> None:
        idx = np.flatnonzero(churned)
        k = len(idx)
        cause = np.where(complaints[idx] > 0, "complaint",
                         np.where(rng.random(k) < 0.6, "price", "other"))
        reason = np.array([CHURN_REASONS[c][j % len(CHURN_REASONS[c])] for c, j in
                           zip(cause, rng.integers(0, 3, k), strict=True)], dtype=object)
        comp = COMPETITORS[self.industry]
        dest = _only_where(cause != "other",
                           np.array(comp, dtype=object)[rng.integers(0, len(comp), k)])
        self.churn.append({
            "流失编号": np.array([f"CH{x[1:]}" for x in ids[idx]], dtype=object),
            "客户编号": ids[idx], "流失日期": churn_at[idx].astype("datetime64[D]"),
            "流失原因": reason, "流失去向": dest,
            "流失类型": np.where(rng.random(k) < 0.9, "主动", "被动")})

    # -- ground truth and manifest ---------------------------------------------------------
    def _write_truth(self) -> None:
        t = self.out / "truth"
        pq.write_table(pa.table({
            "file": [d[0] for d in self.dirty_rows], "row": [d[1] for d in self.dirty_rows],
            "kind": [d[2] for d in self.dirty_rows], "column": [d[3] for d in self.dirty_rows],
        }, schema=pa.schema([("file", pa.string()), ("row", pa.int64()), ("kind", pa.string()),
                             ("column", pa.string())])), t / "dirty_rows.parquet")
        pq.write_table(pa.table({
            "duplicate_id": [r["duplicate_id"] for r in self.truth_rows],
            "duplicate_of": [r["duplicate_of"] for r in self.truth_rows]},
            schema=pa.schema([("duplicate_id", pa.string()), ("duplicate_of", pa.string())])),
            t / "duplicates.parquet")
        pq.write_table(pa.table({
            "customer_id": [c for c, _ in self.fraud_rows],
            "pattern": [p for _, p in self.fraud_rows]},
            schema=pa.schema([("customer_id", pa.string()), ("pattern", pa.string())])),
            t / "fraud.parquet")
        pq.write_table(pa.table({"product_a": [a for a, _ in self.pairs],
                                 "product_b": [b for _, b in self.pairs]}),
                       t / "affinity_pairs.parquet")
        mean_mult = [self.response_mult[c][0] / self.response_mult[c][1]
                     if self.response_mult.get(c, [0, 0])[1] else 1.0 for c in (1, 2, 3)]
        pq.write_table(pa.table({
            "campaign_id": ["CMP1", "CMP2", "CMP3"],
            "control_share": [0.10] * 3,
            # expected over the contacted customers (response scales with the value class)
            "base_response_rate": [CAMPAIGN_BASE * m for m in mean_mult],
            "true_effect": [e * m for e, m in zip(self.effects, mean_mult, strict=True)],
            # a responder's revenue is gamma(2, 80): mean 160
            "mean_response_revenue": [RESPONSE_REVENUE_MEAN] * 3,
            "true_revenue_per_contact": [e * m * RESPONSE_REVENUE_MEAN
                                         for e, m in zip(self.effects, mean_mult, strict=True)],
            "control_seed": [f"default_rng([{self.seed}, 777, {c}, chunk_start])"
                             for c in (1, 2, 3)]}), t / "campaigns.parquet")

    def _write_manifest(self, contracts: Path) -> Path:
        tx = "bills.parquet" if self.industry == "telco" else "transactions.csv"
        entries = [("employees", "employees.csv"), ("products", "products.csv"),
                   ("customers", "customers.csv"), ("transactions", tx),
                   ("contracts", contracts.name), ("interactions", "interactions.jsonl"),
                   ("tickets", "tickets.csv"), ("campaigns", "campaigns.csv"),
                   ("campaign_contacts", "campaign_contacts.csv"),
                   ("responses", "responses.csv"), ("surveys", "surveys.csv"),
                   ("referrals", "referrals.csv"), ("churn_events", "churn_events.csv")]
        if self.payments is not None:
            entries.append(("payments", "payments.csv"))
        data = {"sources": [{"entity": e, "files": [f]} for e, f in entries]}
        path = self.out / "manifest.yaml"
        path.write_text("# The demo company's source-system exports, for 'kehu load'.\n"
                        + yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
        return path


def _only_where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` where ``mask``, else None."""
    out = values.astype(object).copy()
    out[~mask] = None
    return out


def products(industry: str) -> list[Product]:
    return list(CATALOGUES[industry][0])
