"""Planning and launching campaigns (C1): audience at launch, contact policy, holdout, writes.

``plan`` evaluates the audience, applies the contact policy and says what the test can
detect (power). ``launch`` does the same and then, in this order:

1. records the launch in the app store (its unique campaign id refuses a second launch);
2. writes the campaign, its contacts (treatment and control, the holdout drawn within each
   tier with a recorded seed) and the audience snapshot (with every suppressed customer and
   the rule that suppressed them) to the warehouse;
3. queues one message per treated customer in the outbox (idempotent: ``send`` queues what
   is missing before delivering, so an interrupted launch loses nothing).

If step 2 fails the launch record is removed again, so the campaign can be launched anew.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import delete, select

from kehu.campaigns import stats
from kehu.campaigns.policy import CampaignRequest, PolicyResult, apply_policy
from kehu.campaigns.spec import CampaignSpec, ContactPolicy
from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import _
from kehu.model import entity
from kehu.segments.compile import Context, compile_segment
from kehu.segments.spec import SegmentSpec

if TYPE_CHECKING:
    from kehu.workspace import Workspace

AUDIENCE_TABLE = "campaign_audience"
POLICY_NAME = "default"
NO_TIER = "-"
#: the warehouse's channel names back to campaign channels (for caps and opt-outs)
FROM_WAREHOUSE = {"sms": "sms", "email": "email", "hotline": "phone", "mail": "mail",
                  "push": "push", "app": "push"}
ADDRESS = {"sms": "phone", "phone": "phone", "email": "email", "mail": "address"}
#: when nothing better is known: the control response rate assumed for the power check
DEFAULT_BASE_RATE = 0.03


@dataclass
class CampaignPlan:
    campaign_id: str
    name: str
    channel: str
    start: date
    audience_as_of: date
    eligible: int
    contactable: int
    suppressed: int
    suppressed_by_rule: dict[str, int]
    treatment: int
    control: int
    cost: float
    base_rate: float
    base_rate_source: str
    power: dict[str, Any]
    by_tier: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    #: customer_id, tier, score, name, phone, email, address (the contactable customers)
    customers: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: campaign_id, customer_id, rule, detail
    suppressed_rows: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("customers")
        d.pop("suppressed_rows")
        return d


@dataclass
class LaunchReport:
    plan: CampaignPlan
    seed: int
    launched_at: datetime
    treatment: int
    control: int
    queued: int

    def to_dict(self) -> dict[str, Any]:
        return {"campaign_id": self.plan.campaign_id, "seed": self.seed,
                "launched_at": self.launched_at.isoformat(), "treatment": self.treatment,
                "control": self.control, "queued": self.queued, "plan": self.plan.to_dict()}


# -- policy and opt-outs in the app store --------------------------------------------------
def get_policy(ws: Workspace) -> ContactPolicy:
    """The workspace's contact policy (the default one until someone sets it)."""
    from kehu.store import services as sv

    try:
        d = sv.get_definition(ws.store, "contact_policy", POLICY_NAME)
    except NotFoundError:
        return ContactPolicy()
    return ContactPolicy.parse(d.spec, "contact_policy")


def set_policy(ws: Workspace, policy: ContactPolicy, actor: str) -> ContactPolicy:
    from kehu.store import services as sv

    sv.save_definition(ws.store, sv.DefinitionIn(
        kind="contact_policy", name=POLICY_NAME, spec=policy.model_dump(mode="json")), actor)
    return policy


def add_opt_out(ws: Workspace, customer_id: str, actor: str, channel: str | None = None,
                reason: str | None = None, since: date | None = None,
                until: date | None = None) -> int:
    """Put a customer on the do-not-contact list (all channels, or one)."""
    from kehu.store import services as sv
    from kehu.store.models import DoNotContact

    if channel is not None and channel not in ADDRESS and channel != "push":
        raise KehuInputError(_("Unknown channel '{v}': use sms, email, phone, mail or "
                               "push.").format(v=channel))
    with ws.store.session() as s:
        row = DoNotContact(customer_id=customer_id, channel=channel, reason=reason,
                           source="kehu", valid_from=since or date.today(), valid_to=until)
        s.add(row)
        s.flush()
        rid = row.id
    sv.record(ws.store, actor, "create", "do_not_contact", customer_id,
              {"channel": channel, "reason": reason})
    return rid


def opt_outs(ws: Workspace, on: date) -> pd.DataFrame:
    """``customer_id``, ``channel`` (None = all) in force on ``on``: the do-not-contact list
    and imported responses of type ``opt_out`` (for the channel of their campaign)."""
    from kehu.store.models import DoNotContact

    with ws.store.session() as s:
        rows = [(r.customer_id, r.channel) for r in s.scalars(select(DoNotContact).where(
            DoNotContact.valid_from <= on))
            if r.valid_to is None or r.valid_to > on]
    frames = [pd.DataFrame(rows, columns=["customer_id", "channel"])]
    eng = ws.engine
    if eng.warehouse.exists("responses") and "response_type" in eng.table("responses").columns:
        r = eng.table("responses")
        r = r.filter((r.response_type == "opt_out") & (r.response_time.date() <= on))
        if eng.warehouse.exists("campaigns"):
            c = eng.table("campaigns").select("campaign_id", "channel")
            r = r.left_join(c, "campaign_id")
            got = r.select("customer_id", "channel").to_pandas()
            got["channel"] = got.channel.map(FROM_WAREHOUSE)
        else:
            got = r.select("customer_id").to_pandas().assign(channel=None)
        frames.append(got)
    return pd.concat(frames, ignore_index=True)


def contact_history(ws: Workspace) -> pd.DataFrame:
    """Past (and planned) contacts made: treatment rows of ``campaign_contacts``."""
    eng = ws.engine
    if not eng.warehouse.exists("campaign_contacts"):
        return pd.DataFrame({"customer_id": [], "channel": [], "day": []})
    k = eng.table("campaign_contacts")
    k = k.filter(k.group == "treatment")
    df = k.select("customer_id", "channel", day=k.contact_time.date()).to_pandas()
    df["channel"] = df.channel.map(FROM_WAREHOUSE).fillna(df.channel)
    return df


# -- audience -------------------------------------------------------------------------------
def evaluate_audience(ws: Workspace, spec: CampaignSpec, as_of: date | None = None
                      ) -> tuple[pd.DataFrame, date]:
    """The audience at ``as_of`` (default: the data's last day): ``customer_id, tier, score,
    name, phone, email, address``, best first when there is a score band."""
    from kehu.store import services as sv

    ctx = Context(ws.engine, as_of)
    base = ctx.base
    a = spec.audience
    rule = a.rule
    if a.segment:
        seg = SegmentSpec.parse(sv.get_definition(ws.store, "segment", a.segment).spec,
                                a.segment)
        rule = seg.rule
    t = base
    if rule is not None:
        members = compile_segment(SegmentSpec(name=spec.name, rule=rule), ctx)
        t = t.filter(t.customer_id.isin(members.customer_id))
    score = None
    if a.score_band is not None:
        b = a.score_band
        if b.score not in t.columns or not t[b.score].type().is_numeric():
            numeric = sorted(c for c in base.columns if base[c].type().is_numeric())
            raise KehuInputError(_("Campaign {id}: audience.score_band.score: '{v}' is not a "
                                   "numeric score of the latest analysis run. Use one of: "
                                   "{opts}.").format(id=spec.id, v=b.score,
                                                     opts=", ".join(numeric)))
        score = t[b.score]
        if b.min is not None:
            t = t.filter(score >= b.min)
        if b.max is not None:
            t = t.filter(score <= b.max)
        t = t.order_by([ibis.desc(b.score), "customer_id"])
        if b.top:
            t = t.limit(b.top)
    else:
        t = t.order_by("customer_id")
    if a.limit:
        t = t.limit(a.limit)
    cols = {"customer_id": t.customer_id.cast("string")}
    for c in ("tier", "name", "phone", "email", "address"):
        cols[c] = t[c].cast("string") if c in t.columns else ibis.null("string")
    cols["score"] = t[a.score_band.score].cast("float64") if a.score_band else \
        ibis.null("float64")
    df = t.select(**cols).to_pandas()
    df["tier"] = df.tier.fillna(NO_TIER)
    return df, ctx.as_of


def _addressable(df: pd.DataFrame, channel: str) -> set[str] | None:
    col = ADDRESS.get(channel)
    if col is None:
        return None
    v = df[col].fillna("").astype(str).str.strip()
    return set(df.customer_id[v != ""])


# -- planning -------------------------------------------------------------------------------
def past_base_rate(ws: Workspace, spec: CampaignSpec) -> tuple[float, str]:
    """The control groups' response rate in past campaigns (same channel if there are any),
    for the power check."""
    if spec.expected_base_rate is not None:
        return spec.expected_base_rate, "spec"
    eng = ws.engine
    if not (eng.warehouse.exists("campaign_contacts") and eng.warehouse.exists("responses")):
        return DEFAULT_BASE_RATE, "default"
    k = eng.table("campaign_contacts")
    k = k.filter(k.group == "control")
    r = eng.table("responses")
    hit = r.select("campaign_id", "customer_id").distinct().mutate(hit=ibis.literal(1))
    j = k.left_join(hit, ["campaign_id", "customer_id"])
    agg = j.group_by("channel").aggregate(n=j.count(), x=j.hit.fill_null(0).sum()).to_pandas()
    if agg.empty or agg.n.sum() == 0:
        return DEFAULT_BASE_RATE, "default"
    same = agg[agg.channel == spec.warehouse_channel]
    if len(same) and same.n.sum() >= 100:
        agg, source = same, "past_controls_same_channel"
    else:
        source = "past_controls"
    # half a response added either way keeps the rate inside (0, 1) for the power check
    return float((agg.x.sum() + 0.5) / (agg.n.sum() + 1)), source


def plan(ws: Workspace, spec: CampaignSpec, as_of: date | None = None,
         policy: ContactPolicy | None = None) -> CampaignPlan:
    """What launching ``spec`` would do — nothing is written."""
    return plan_many(ws, [spec], as_of, policy)[0]


def plan_many(ws: Workspace, specs: Sequence[CampaignSpec], as_of: date | None = None,
              policy: ContactPolicy | None = None) -> list[CampaignPlan]:
    """Plans of campaigns launched together: the policy gives competing customers to the
    higher priority first."""
    if len({s.id for s in specs}) != len(specs):
        raise KehuInputError(_("Two campaigns in one launch have the same id."))
    policy = policy or get_policy(ws)
    audiences = {}
    for s in specs:
        audiences[s.id] = evaluate_audience(ws, s, as_of)
    requests = [CampaignRequest(s.id, s.channel, s.schedule.start,
                                audiences[s.id][0].customer_id.tolist(), s.priority,
                                _addressable(audiences[s.id][0], s.channel)
                                if policy.require_address else None) for s in specs]
    day = min(s.schedule.start for s in specs)
    res = apply_policy(requests, policy, contact_history(ws), opt_outs(ws, day))
    return [_plan(ws, s, audiences[s.id][0], audiences[s.id][1], res) for s in specs]


def _plan(ws: Workspace, spec: CampaignSpec, aud: pd.DataFrame, as_of: date,
          res: PolicyResult) -> CampaignPlan:
    summ = res.summary[spec.id]
    ok = set(res.contacts.customer_id[res.contacts.campaign_id == spec.id])
    cust = aud[aud.customer_id.isin(ok)].drop_duplicates("customer_id").reset_index(drop=True)
    n = len(cust)
    f = spec.holdout.fraction
    n_c = round(n * f)
    n_t = n - n_c
    base_rate, source = past_base_rate(ws, spec)
    warnings: list[str] = []
    if f > 0 and n >= 2 and spec.expected_effect is not None:
        pw = stats.plan_power(n, f, base_rate=base_rate, expected_effect=spec.expected_effect)
        power = pw.to_dict()
        if pw.warning:
            warnings.append(pw.warning)
    elif f > 0 and n >= 2:
        power = {"mde": stats.minimum_detectable_effect(n, f, base_rate=base_rate),
                 "power": None, "n_treat": n_t, "n_control": n_c, "base_rate": base_rate}
    else:
        power = {"mde": None, "power": None}
        warnings.append(_("No control group: the result will be a before/after comparison "
                          "against a matched group, which is weaker evidence."))
    capped = _offers(ws, spec, cust)
    if capped:
        warnings.append(_("The tier's discount authority capped the offer for {n} customers "
                          "({tiers}).").format(n=sum(capped.values()), tiers=", ".join(
                              f"{k} {v}" for k, v in sorted(capped.items()))))
    sup = res.suppressed[res.suppressed.campaign_id == spec.id]
    tiers = aud.drop_duplicates("customer_id").groupby("tier").size().rename("eligible")
    ct = cust.groupby("tier").size().rename("contactable")
    by_tier = pd.concat([tiers, ct], axis=1).fillna(0).astype(int).reset_index(
        names="tier").to_dict("records")
    if summ["eligible"] == 0:
        warnings.append(_("The audience is empty."))
    return CampaignPlan(
        spec.id, spec.name, spec.channel, spec.schedule.start, as_of, summ["eligible"], n,
        summ["suppressed"], summ["by_rule"], n_t, n_c,
        round(spec.cost_fixed + spec.cost_per_contact * n_t, 2), base_rate, source, power,
        by_tier, warnings, cust, sup.reset_index(drop=True))


def _offers(ws: Workspace, spec: CampaignSpec, cust: pd.DataFrame) -> dict[str, int]:
    """Each customer's offer text and discount, the discount capped by the service level
    of their tier (C6); adds ``offer``, ``discount``, ``discount_capped`` to ``cust`` and
    returns the number capped by tier."""
    from kehu.accounts.service_levels import load_service_levels

    levels = load_service_levels(ws.store)
    offer, disc, cap = [], [], []
    capped: dict[str, int] = {}
    for t in cust.tier:
        o = spec.offers.for_tier(t)
        offer.append(o.text if o else None)
        d, c = (o.discount if o else None), False
        if d is not None and t in levels.tiers:  # no tier yet (no run): nothing to cap by
            d, c, _why = levels.apply_to_offer(t, d)
        disc.append(d)
        cap.append(c)
        if c:
            capped[t] = capped.get(t, 0) + 1
    cust["offer"] = pd.Series(offer, index=cust.index, dtype=object)
    cust["discount"] = pd.Series(disc, index=cust.index, dtype="float64")
    cust["discount_capped"] = cap
    return capped


# -- launching ------------------------------------------------------------------------------
def assign_groups(tiers: Sequence[str], fraction: float, seed: int,
                  stratify: bool = True) -> np.ndarray:
    """``True`` for the control group: within each tier (sorted) a random ``fraction``, the
    fractional remainder rounded at random so the expected share is exact.

    >>> g = assign_groups(["a"] * 50 + ["b"] * 50, 0.1, seed=7)
    >>> int(g.sum()), int(g[:50].sum()), int(g[50:].sum())
    (10, 5, 5)
    """
    rng = np.random.default_rng(seed)
    t = np.asarray(tiers, dtype=object)
    out = np.zeros(len(t), dtype=bool)
    groups = sorted(set(t.tolist())) if stratify else [None]
    for g in groups:
        idx = np.flatnonzero(t == g) if g is not None else np.arange(len(t))
        want = fraction * len(idx)
        k = int(np.floor(want)) + int(rng.random() < want - np.floor(want))
        out[rng.permutation(idx)[:k]] = True
    return out


def launch(ws: Workspace, spec: CampaignSpec, actor: str, as_of: date | None = None,
           policy: ContactPolicy | None = None, seed: int | None = None) -> LaunchReport:
    return launch_many(ws, [spec], actor, as_of, policy, seed)[0]


def launch_many(ws: Workspace, specs: Sequence[CampaignSpec], actor: str,
                as_of: date | None = None, policy: ContactPolicy | None = None,
                seed: int | None = None) -> list[LaunchReport]:
    from kehu.campaigns.outbox import enqueue
    from kehu.store import services as sv
    from kehu.store.models import CampaignLaunch

    _refuse_relaunch(ws, specs)
    plans = plan_many(ws, specs, as_of, policy)
    reports = []
    for spec, p in zip(specs, plans, strict=True):
        s_seed = seed if seed is not None else (spec.holdout.seed if spec.holdout.seed
                                                is not None else secrets.randbelow(2**31 - 1))
        control = assign_groups(p.customers.tier.tolist(), spec.holdout.fraction, s_seed,
                                spec.holdout.stratify_by == "tier")
        now = datetime.now(UTC)
        d = sv.save_definition(ws.store, sv.DefinitionIn(
            kind="campaign", name=spec.id, description=spec.name,
            spec=spec.model_dump(mode="json")), actor)
        with ws.store.session() as s:
            s.add(CampaignLaunch(
                campaign_id=spec.id, definition_name=spec.id, definition_version=d.version,
                launched_at=now, launched_by=actor, seed=s_seed, eligible=p.eligible,
                suppressed=p.suppressed, treatment=int((~control).sum()),
                control=int(control.sum()), status="launched",
                summary={"by_rule": p.suppressed_by_rule, "power": p.power,
                         "warnings": p.warnings}))
        try:
            _write_warehouse(ws, spec, p, control, s_seed, now)
        except Exception:
            with ws.store.session() as s:
                s.execute(delete(CampaignLaunch).where(CampaignLaunch.campaign_id == spec.id))
            raise
        queued = enqueue(ws.store, messages(ws, spec)).added
        sv.record(ws.store, actor, "launch", "campaign", spec.id,
                  {"treatment": int((~control).sum()), "control": int(control.sum()),
                   "suppressed": p.suppressed, "seed": s_seed})
        reports.append(LaunchReport(p, s_seed, now, int((~control).sum()), int(control.sum()),
                                    queued))
    return reports


def _refuse_relaunch(ws: Workspace, specs: Sequence[CampaignSpec]) -> None:
    from kehu.store.models import CampaignLaunch

    ids = [s.id for s in specs]
    with ws.store.session() as s:
        done = list(s.scalars(select(CampaignLaunch.campaign_id).where(
            CampaignLaunch.campaign_id.in_(ids))))
    eng = ws.engine
    if eng.warehouse.exists("campaigns"):
        c = eng.table("campaigns")
        done += [str(x) for x in c.filter(c.campaign_id.isin(ids)).campaign_id.to_pyarrow()
                 .to_pylist()]
    if done:
        raise KehuInputError(_("Campaign {id} already exists (launched or imported). Give "
                               "the new campaign another id.").format(id=sorted(set(done))[0]))


def _contact_time(spec: CampaignSpec) -> datetime:
    return datetime.combine(spec.schedule.start, datetime.min.time()) + timedelta(
        hours=spec.schedule.hour)


def _write_warehouse(ws: Workspace, spec: CampaignSpec, p: CampaignPlan,
                     control: np.ndarray, seed: int, now: datetime) -> None:
    wh = ws.warehouse
    import_id = f"launch:{spec.id}"
    camp = pa.table({
        "campaign_id": [spec.id], "name": [spec.name], "channel": [spec.warehouse_channel],
        "goal": [spec.goal], "start_date": [spec.schedule.start],
        "end_date": [spec.schedule.end or spec.schedule.start + timedelta(
            days=spec.attribution_window_days)],
        "cost_fixed": [spec.cost_fixed], "cost_per_contact": [spec.cost_per_contact]})
    cust = p.customers
    when = _contact_time(spec)
    offers = cust.offer.tolist()
    contacts = pa.table({
        "contact_id": [f"{spec.id}-{c}" for c in cust.customer_id],
        "campaign_id": [spec.id] * len(cust), "customer_id": cust.customer_id.tolist(),
        "contact_time": [when] * len(cust),
        "group": np.where(control, "control", "treatment").tolist(),
        "channel": [spec.warehouse_channel] * len(cust), "offer": offers})
    sup = p.suppressed_rows
    tier_of = dict(zip(cust.customer_id, cust.tier, strict=True))
    snap = pd.DataFrame({
        "campaign_id": spec.id, "customer_id": cust.customer_id,
        "tier": cust.tier, "score": cust.score.astype("float64"),
        "group": np.where(control, "control", "treatment"), "rule": None, "detail": None,
        "discount": cust.discount.astype("float64")})
    if len(sup):
        snap = pd.concat([snap, pd.DataFrame({
            "campaign_id": spec.id, "customer_id": sup.customer_id,
            "tier": [tier_of.get(c, NO_TIER) for c in sup.customer_id], "score": np.nan,
            "group": "suppressed", "rule": sup.rule, "detail": sup.detail,
            "discount": np.nan})],
            ignore_index=True)
    snap["launched_at"] = pd.Timestamp(now.replace(tzinfo=None))
    snap["seed"] = seed
    snap["audience_as_of"] = p.audience_as_of
    meta = {"kehu.campaign": spec.id}
    wh.append("campaigns", _conform(wh, "campaigns", camp, import_id), metadata=meta)
    wh.append("campaign_contacts", _conform(wh, "campaign_contacts", contacts, import_id),
              metadata=meta)
    wh.append(AUDIENCE_TABLE, pa.Table.from_pandas(snap, preserve_index=False, schema=pa.schema(
        [("campaign_id", pa.string()), ("customer_id", pa.string()), ("tier", pa.string()),
         ("score", pa.float64()), ("group", pa.string()), ("rule", pa.string()),
         ("detail", pa.string()), ("discount", pa.float64()),
         ("launched_at", pa.timestamp("us")), ("seed", pa.int64()),
         ("audience_as_of", pa.date32())])), metadata=meta, merge_schema=True)


def _conform(wh: Any, name: str, t: pa.Table, import_id: str) -> pa.Table:
    """``t`` in the warehouse table's schema (or the entity's, for a new table), with the
    lineage columns saying it came from a launch in kehu."""
    schema = wh.schema(name) if wh.exists(name) else entity(name).arrow_schema()
    cols = []
    for f in schema:
        if f.name in t.column_names:
            cols.append(t.column(f.name).cast(f.type))
        elif f.name == "_import_id":
            cols.append(pa.array([import_id] * t.num_rows, f.type))
        elif f.name == "_source_file":
            cols.append(pa.array(["kehu"] * t.num_rows, f.type))
        else:
            cols.append(pa.nulls(t.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


# -- messages -------------------------------------------------------------------------------
def messages(ws: Workspace, spec: CampaignSpec) -> list[dict[str, Any]]:
    """One outbox message per treated customer, rendered from the spec's templates."""
    from kehu.campaigns.outbox import render

    eng = ws.engine
    k = eng.table("campaign_contacts")
    k = k.filter((k.campaign_id == spec.id) & (k.group == "treatment"))
    c = eng.table("customers")
    cols = [x for x in ("name", "phone", "email", "address") if x in c.columns]
    j = k.left_join(c.select("customer_id", *cols), "customer_id")
    df = j.select("contact_id", "customer_id", "offer", *cols).to_pandas()
    if len(df) and ws.warehouse.exists(AUDIENCE_TABLE):
        a = eng.table(AUDIENCE_TABLE)
        tiers = a.filter(a.campaign_id == spec.id).select("customer_id", "tier", "discount") \
            .to_pandas()
        df = df.merge(tiers, on="customer_id", how="left")
    else:
        df["tier"] = None
        df["discount"] = None
    addr = ADDRESS.get(spec.channel)
    out = []
    for r in df.itertuples(index=False):
        fields = {"name": getattr(r, "name", None) or "", "offer": r.offer or "",
                  "tier": r.tier or "", "customer_id": r.customer_id,
                  "campaign": spec.name}
        out.append({
            "contact_id": r.contact_id, "campaign_id": spec.id, "customer_id": r.customer_id,
            "channel": spec.channel,
            "recipient": (getattr(r, addr, None) if addr else r.customer_id) or None,
            "subject": render(spec.message.subject, fields) if spec.message.subject else None,
            "body": render(spec.message.body, fields),
            "payload": {"offer": r.offer, "tier": r.tier, "name": fields["name"],
                        "discount": None if pd.isna(r.discount) else float(r.discount)}})
    return out


def launched(ws: Workspace, campaign_id: str) -> tuple[CampaignSpec, Any]:
    """The spec and launch record of a campaign launched in kehu."""
    from kehu.store import services as sv
    from kehu.store.models import CampaignLaunch

    with ws.store.session() as s:
        row = s.scalars(select(CampaignLaunch).where(
            CampaignLaunch.campaign_id == campaign_id)).first()
    if row is None:
        raise NotFoundError(_("No campaign {id} was launched in kehu ('kehu campaign list' "
                              "shows them).").format(id=campaign_id))
    d = sv.get_definition(ws.store, "campaign", row.definition_name)
    return CampaignSpec.parse(d.spec, campaign_id), row


def send(ws: Workspace, campaign_id: str, actor: str, config: dict[str, Any] | None = None,
         max_attempts: int = 3, today: date | None = None, early: bool = False) -> Any:
    """Queue whatever of the campaign is not queued yet and deliver it through the spec's
    channel adapter (settings from ``[channels.<adapter>]``). A campaign scheduled for a
    later day is not sent before it unless ``early``."""
    from kehu.campaigns.channels import get_channel
    from kehu.campaigns.outbox import deliver, enqueue

    spec, _row = launched(ws, campaign_id)
    today = today or date.today()
    if spec.schedule.start > today and not early:
        raise KehuInputError(_("Campaign {id} is scheduled for {start}: send it on or after "
                               "that day, or now with --early.").format(
            id=campaign_id, start=spec.schedule.start))
    if spec.schedule.end is not None and spec.schedule.end < today:
        raise KehuInputError(_("Campaign {id} ended on {end}: its messages are no longer "
                               "sent.").format(id=campaign_id, end=spec.schedule.end))
    enqueue(ws.store, messages(ws, spec))
    cfg = config if config is not None else ws.settings.channels.get(spec.adapter, {})
    channel = get_channel(spec.adapter, cfg)
    try:
        return deliver(ws.store, channel, campaign_id=campaign_id, max_attempts=max_attempts,
                       actor=actor)
    finally:
        close = getattr(channel, "close", None)
        if close is not None:
            close()
