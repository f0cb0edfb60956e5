"""What the campaign pages show, apart from the routes: the form's fields as a
:class:`~kehu.campaigns.spec.CampaignSpec` and back, translated labels, the plan and the
results as template data, and their ECharts options (labels translated on the server).

>>> spec = form_spec({"campaign_id": "C1", "name": "x", "channel": "sms", "segment": "s",
...                   "start": "2026-03-01", "holdout": "15", "expected_effect": "2"})
>>> spec.holdout.fraction, spec.expected_effect, spec.audience.segment
(0.15, 0.02, 's')
>>> spec_form_values(spec.model_dump(mode="json"))["holdout"]
'15'
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import yaml

from kehu.campaigns.drafts import STATUS_LABELS, plan_to_dict
from kehu.campaigns.launch import CampaignPlan
from kehu.campaigns.measure import SEGMENT_FIELDS, CampaignResult
from kehu.campaigns.policy import RULES
from kehu.campaigns.spec import CampaignSpec
from kehu.errors import KehuInputError
from kehu.i18n import N_, _

if TYPE_CHECKING:
    from kehu.workspace import Workspace

FormValues = dict[str, str]

#: the form's fields and their labels (errors name the field by its label)
FIELDS: dict[str, str] = {
    "campaign_id": N_("Campaign id"), "name": N_("Name"), "goal": N_("Goal"),
    "channel": N_("Channel"), "segment": N_("Saved segment"), "score": N_("Score band"),
    "score_min": N_("Score at least"), "score_max": N_("Score at most"),
    "score_top": N_("Only the top N by score"), "offer_text": N_("Offer"),
    "offer_discount": N_("Discount (%)"), "message_body": N_("Message"),
    "cost_per_contact": N_("Cost per contact"), "cost_fixed": N_("Fixed cost"),
    "start": N_("Start date"), "end": N_("End date"),
    "window": N_("Attribution window (days)"), "holdout": N_("Holdout (% of the audience)"),
    "expected_effect": N_("Expected effect (percentage points)"), "priority": N_("Priority"),
    "spec_yaml": N_("Campaign spec (YAML)"),
}
GOALS = {"cross_sell": N_("Cross-sell"), "up_sell": N_("Up-sell"), "retention": N_("Retention"),
         "reactivation": N_("Reactivation"), "winback": N_("Win-back"),
         "loyalty": N_("Loyalty"), "referral": N_("Referral"),
         "repeat_purchase": N_("Repeat purchase"), "acquisition": N_("Acquisition"),
         "other": N_("Other")}
CHANNELS = {"sms": N_("SMS"), "email": N_("E-mail"), "phone": N_("Phone (call list)"),
            "mail": N_("Direct mail"), "push": N_("App push")}
RULE_LABELS = {"opt_out": N_("Opted out"), "no_address": N_("No address for the channel"),
               "quiet_period": N_("Quiet period"), "cap": N_("Contact cap reached")}
BASE_RATE_SOURCES = {"spec": N_("given in the spec"), "default": N_("default assumption"),
                     "past_controls": N_("past campaigns' control groups"),
                     "past_controls_same_channel": N_(
                         "past campaigns' control groups, same channel")}
DESIGNS = {"randomised": N_("Randomised control group"),
           "difference_in_differences": N_("Difference-in-differences against a matched "
                                           "comparison group")}
ATTRIBUTION = {"responses": N_("imported responses"),
               "transactions": N_("purchases in the attribution window"),
               "auto": N_("responses if any, else purchases")}
METHODS = {"welch": N_("Welch's interval"), "bootstrap": N_("bootstrap interval"),
           "compound": N_("compound interval (few responders)"),
           "newcombe": N_("Newcombe's interval")}
SEGMENT_HEADERS = {"tier": N_("Tier"), "rfm_class": N_("RFM class"),
                   "lifecycle_stage": N_("Lifecycle stage")}
SEGMENT_TITLES = {"tier": N_("Uplift by tier"), "rfm_class": N_("Uplift by RFM class"),
                  "lifecycle_stage": N_("Uplift by lifecycle stage")}
HISTORY = {"create_draft": N_("created the draft"), "update_draft": N_("changed the draft"),
           "submit": N_("submitted for approval"), "approve": N_("approved"),
           "reject": N_("rejected"), "launch": N_("launched")}
WEAKER = N_("Weaker evidence: no randomised control group. The campaign is compared with "
            "matched customers who were not contacted (difference-in-differences).")


def _field(key: str) -> str:
    """The form field's label, translated."""
    return _(FIELDS[key])


def labels(locale: str, ws: Workspace | None = None) -> dict[str, dict[str, str]]:
    """Every code the campaign pages show, with its label in ``locale`` (tier names from
    the workspace's tier scheme when ``ws`` is given)."""
    from kehu.web.routes.customers import choices

    c = choices(locale, ws)
    out = {name: {k: _(v) for k, v in table.items()} for name, table in (
        ("status", STATUS_LABELS), ("goal", GOALS), ("channel", CHANNELS),
        ("rule", RULE_LABELS), ("base_rate_source", BASE_RATE_SOURCES), ("design", DESIGNS),
        ("attribution", ATTRIBUTION), ("method", METHODS), ("field", FIELDS),
        ("segment_title", SEGMENT_TITLES), ("history", HISTORY))}
    out |= {"tier": dict(c["tier"]), "rfm_class": dict(c["rfm"]),
            "lifecycle_stage": dict(c["lifecycle"])}
    return out


# -- the form ---------------------------------------------------------------------------------
def _number(values: FormValues, key: str, *, whole: bool = False,
            percent: bool = False) -> float | int | None:
    raw = values.get(key, "").strip()
    if not raw:
        return None
    try:
        v: float | int = int(raw) if whole else float(raw)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise KehuInputError(_("{field}: expected {kind}, got '{value}'. Enter a number such "
                               "as {example}.").format(
            field=_field(key), kind=_("a whole number") if whole else _("a number"),
            value=raw, example="10" if whole or percent else "0.5"))
    return round(v / 100, 10) if percent else v


def form_spec(values: FormValues) -> CampaignSpec:
    """The campaign the form describes — or, when its YAML box is filled, the spec written
    there. Raises :class:`KehuInputError` naming the field."""
    text = values.get("spec_yaml", "").strip()
    if text:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise KehuInputError(_("{field}: not valid YAML ({err}). Fix it, or empty the box "
                                   "to use the fields above.").format(
                field=_field("spec_yaml"), err=str(exc).replace("\n", " "))) from exc
        if not isinstance(raw, dict):
            raise KehuInputError(_("{field}: expected a mapping of campaign fields (id: …, "
                                   "name: …), got {kind}.").format(
                field=_field("spec_yaml"), kind=type(raw).__name__))
        return CampaignSpec.parse(raw, _field("spec_yaml"))
    audience: dict[str, Any] = {}
    if values.get("segment"):
        audience["segment"] = values["segment"]
    if values.get("score"):
        band = {"score": values["score"], "min": _number(values, "score_min"),
                "max": _number(values, "score_max"),
                "top": _number(values, "score_top", whole=True)}
        audience["score_band"] = {k: v for k, v in band.items() if v is not None}
    data: dict[str, Any] = {"id": values.get("campaign_id", ""),
                            "name": values.get("name", ""), "channel": values.get("channel"),
                            "audience": audience}
    if values.get("goal"):
        data["goal"] = values["goal"]
    schedule = {k: values[k] for k in ("start", "end") if values.get(k)}
    data["schedule"] = schedule
    if values.get("offer_text"):
        offer: dict[str, Any] = {"text": values["offer_text"]}
        disc = _number(values, "offer_discount", percent=True)
        if disc is not None:
            offer["discount"] = disc
        data["offers"] = {"default": offer}
    if values.get("message_body"):
        data["message"] = {"body": values["message_body"]}
    numbers = {"cost_per_contact": _number(values, "cost_per_contact"),
               "cost_fixed": _number(values, "cost_fixed"),
               "attribution_window_days": _number(values, "window", whole=True),
               "expected_effect": _number(values, "expected_effect", percent=True),
               "priority": _number(values, "priority", whole=True)}
    data |= {k: v for k, v in numbers.items() if v is not None}
    holdout = _number(values, "holdout", percent=True)
    if holdout is not None:
        data["holdout"] = {"fraction": holdout}
    return CampaignSpec.parse(data, _("The form"))


def _text(v: Any, percent: bool = False) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v * 100 if percent else v:g}"
    return str(v)


def spec_form_values(spec: dict[str, Any]) -> FormValues:
    """The form's fields for a saved spec; a spec the fields cannot express (an inline
    rule, offers by tier, a holdout seed …) goes to the YAML box whole."""
    s = CampaignSpec.parse(spec, "campaign")
    band = s.audience.score_band
    offer = s.offers.default
    values: FormValues = {
        "campaign_id": s.id, "name": s.name, "goal": s.goal, "channel": s.channel,
        "segment": s.audience.segment or "", "score": band.score if band else "",
        "score_min": _text(band.min) if band else "", "score_max": _text(band.max) if band else "",
        "score_top": _text(band.top) if band else "",
        "offer_text": offer.text if offer else "",
        "offer_discount": _text(offer.discount, True) if offer else "",
        "message_body": s.message.body, "cost_per_contact": _text(s.cost_per_contact),
        "cost_fixed": _text(s.cost_fixed), "start": s.schedule.start.isoformat(),
        "end": s.schedule.end.isoformat() if s.schedule.end else "",
        "window": str(s.attribution_window_days), "holdout": _text(s.holdout.fraction, True),
        "expected_effect": _text(s.expected_effect, True), "priority": str(s.priority)}
    try:
        same = form_spec(values).model_dump() == s.model_dump()
    except KehuInputError:
        same = False
    if not same:
        values["spec_yaml"] = yaml.safe_dump(s.model_dump(mode="json", exclude_none=True),
                                             allow_unicode=True, sort_keys=False)
    return values


# -- the plan -------------------------------------------------------------------------------
def plan_dict(p: CampaignPlan) -> dict[str, Any]:
    """The plan for the template and the API (JSON-ready but for its dates: an undetectable
    lift is None)."""
    return plan_to_dict(p) | {"start": p.start, "audience_as_of": p.audience_as_of}


def plan_chart(p: CampaignPlan) -> dict[str, Any]:
    """Bar chart of the customers each contact-policy rule suppressed."""
    by = p.suppressed_by_rule
    # horizontal bars: every rule's label gets a line of its own (side by side, ECharts
    # dropped every other label of a narrow chart)
    return {"grid": {"containLabel": True, "left": 8},
            "yAxis": {"type": "category", "inverse": True, "axisLabel": {"interval": 0},
                      "data": [_(RULE_LABELS[r]) for r in RULES]},
            "xAxis": {"type": "value", "minInterval": 1},
            "series": [{"type": "bar", "name": _("Suppressed"),
                        "data": [int(by.get(r, 0)) for r in RULES]}]}


# -- the results ----------------------------------------------------------------------------
def _uplift_chart(rows: list[dict[str, Any]], title: str) -> dict[str, Any]:
    return {"xAxis": {"type": "category", "data": [r["label"] for r in rows]},
            "yAxis": {"type": "value", "name": _("points")},
            "series": [{"type": "bar", "name": title,
                        "data": [None if r.get("uplift") is None else
                                 round(100 * r["uplift"], 2) for r in rows]}]}


def _qini_chart(q: dict[str, Any]) -> dict[str, Any]:
    gain = [round(float(g), 2) for g in q["gain"]]
    last = gain[-1] if gain else 0.0
    return {"xAxis": {"type": "category", "name": _("targeted"),
                      "data": [f"{100 * f:.0f}%" for f in q["fraction"]]},
            "yAxis": {"type": "value", "name": _("incremental responders")},
            "series": [{"type": "line", "name": _("Targeting by value"), "data": gain},
                       {"type": "line", "name": _("Random targeting"),
                        "lineStyle": {"type": "dashed"}, "symbol": "none",
                        "data": [round(last * float(f), 2) for f in q["fraction"]]}]}


def result_view(r: CampaignResult, locale: str, ws: Workspace | None = None
                ) -> dict[str, Any]:
    """The measurement as template data: the result's numbers, uplift sections with their
    labels and charts, the Qini chart."""
    d: dict[str, Any] = r.to_dict()
    names = labels(locale, ws)
    sections = []
    for field in SEGMENT_FIELDS:
        rows = d["uplift_by_segment"].get(field)
        if not rows:
            continue
        for row in rows:
            row["label"] = names.get(field, {}).get(str(row["group"]), str(row["group"]))
        title = _(SEGMENT_TITLES[field])
        sections.append({"key": field, "title": title, "rows": rows,
                         "header": _(SEGMENT_HEADERS[field]),
                         "chart": _uplift_chart(rows, _("Uplift of the response rate"))})
    d["uplift_sections"] = sections
    d["qini_chart"] = _qini_chart(d["qini"]) if d.get("qini") else None
    d["qini_rows"] = list(zip(d["qini"]["fraction"], d["qini"]["gain"], strict=True)) \
        if d.get("qini") else []
    for t in d["by_tier"]:
        t["label"] = names["tier"].get(str(t["tier"]), str(t["tier"]))
    d["weaker"] = _(WEAKER) if r.design == "difference_in_differences" else None
    return d
