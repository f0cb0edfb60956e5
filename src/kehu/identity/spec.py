"""The identity-resolution spec: thresholds, blocking, training and survivorship rules —
plain, validated data with defaults (pydantic). It never contains SQL; the splink model is
built from it when resolution runs (:mod:`kehu.identity.model`).

Example (YAML, every key optional)::

    match_threshold: 0.95        # pairs at or above are the same customer
    review_threshold: 0.5        # pairs between the two go to the review queue
    deduplicated_sources: []     # sources known to hold each person at most once
    candidate_floor: 0.001       # ... and the least score of a candidate there
    survivorship:
      default: {rule: most_recent}
      source_priority: [billing, crm, web]
      fields:
        name: {rule: source_priority}
        email: {rule: most_complete}

>>> s = IdentitySpec.parse({"survivorship": {"fields": {"phone": {"rule": "most_complete"}}}})
>>> s.match_threshold, s.rule_for("phone").rule, s.rule_for("name").rule
(0.95, 'most_complete', 'most_recent')
>>> IdentitySpec.parse({"match_threshold": 0.4})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kehu.errors.KehuInputError: ...review_threshold: ... must be below match_threshold (0.4); got 0.5
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel as _Base
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from kehu.i18n import _
from kehu.specfiles import read_yaml, validated

#: columns a blocking rule may name (normalised matching columns)
BLOCKING_COLUMNS = ("family_name", "given_name", "name_key", "name_norm", "birth_date",
                    "birth_year", "phone", "email", "email_user", "id_number", "address",
                    "city", "region", "postcode", "gender")
#: fields of the golden record
GOLDEN_FIELDS = ("name", "gender", "birth_date", "phone", "email", "id_number", "address",
                 "city", "region", "postcode", "customer_type", "account_manager_id",
                 "signup_date", "signup_channel", "industry")
#: comparisons of the model (each used when the records have data for it)
COMPARISONS = ("family_name", "given_name", "birth_date", "gender", "phone", "email",
               "id_number", "address", "locality")

DEFAULT_BLOCKING = (
    ("id_number",), ("phone",), ("email",),
    ("name_key", "birth_year"), ("name_key", "city"), ("name_key", "postcode"),
    ("family_name", "birth_date"), ("given_name", "birth_date"),
    ("birth_date", "postcode"), ("birth_date", "city", "gender"),
    ("address",), ("family_name", "postcode", "gender"),
)
#: broad rules, used when they stay within the pair budget (small and medium data)
DEFAULT_BROAD_BLOCKING = (
    ("given_name",), ("family_name",), ("birth_date",), ("postcode",), ("name_key",),
    ("family_name", "city"), ("given_name", "city"),
)
#: EM sessions: each trains the comparisons not on its blocking columns. Birth date comes
#: only as a fallback: people sharing an ID number and a birthday but not a name (accounts
#: opened under someone else's ID) would teach the model that names may disagree
DEFAULT_TRAINING_BLOCKS = (("name_key",), ("phone",), ("email",), ("postcode",))
DEFAULT_FALLBACK_TRAINING_BLOCKS = (("birth_date",), ("address",), ("city",))


#: a source-system name
SourceName = Annotated[str, Field(min_length=1, max_length=80)]


class BaseModel(_Base):
    """Spec models refuse unknown keys: a typo never silently changes a rule."""

    model_config = ConfigDict(extra="forbid")


class FieldRule(BaseModel):
    """How one golden-record field picks its value among a cluster's records.

    - ``most_recent``: from the record updated last (``updated_at``; ties: source priority)
    - ``most_complete``: from the record with the most filled identity fields
    - ``source_priority``: from the first source in ``sources`` (or the spec's
      ``source_priority``) that has a value; then the most recent
    - ``most_frequent``: the value most records agree on; ties: most recent
    """

    rule: Literal["most_recent", "most_complete", "source_priority",
                  "most_frequent"] = "most_recent"
    sources: list[SourceName] | None = Field(None, min_length=1)


class Survivorship(BaseModel):
    default: FieldRule = Field(default_factory=FieldRule)
    source_priority: list[SourceName] = Field(default_factory=list)
    fields: dict[str, FieldRule] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _known(cls, v: dict[str, FieldRule]) -> dict[str, FieldRule]:
        for name in v:
            if name not in GOLDEN_FIELDS:
                raise ValueError(_("unknown golden-record field {f!r}; known: {known}").format(
                    f=name, known=", ".join(GOLDEN_FIELDS)))
        return v


class IdentitySpec(BaseModel):
    """What identity resolution does; every key has a default."""

    match_threshold: float = Field(0.95, gt=0, lt=1, description="Pairs with a match "
                                   "probability at or above are merged.")
    review_threshold: float = Field(0.5, gt=0, lt=1, validate_default=True,
                                    description="Pairs between this and "
                                    "match_threshold go to the review queue.")
    deduplicated_sources: list[SourceName] = Field(default_factory=list, description=(
        "Source systems known to hold each person at most once: a kehu customer gets at "
        "most one record of each, and a record's candidates in such a source compete for "
        "its one link (kehu.identity.exclusive)."))
    candidate_floor: float = Field(0.001, gt=0, lt=1, description=(
        "With deduplicated_sources: pairs the model scores at least this are the "
        "candidates a record's one link in a duplicate-free source is chosen among."))
    blocking_rules: list[list[str]] = Field(
        default_factory=lambda: [list(r) for r in DEFAULT_BLOCKING],
        description="Candidate pairs: records equal on all columns of at least one rule.")
    broad_blocking_rules: list[list[str]] = Field(
        default_factory=lambda: [list(r) for r in DEFAULT_BROAD_BLOCKING],
        description="Further candidate rules, each used only while it generates at most "
                    "pair_budget pairs per record (they find pairs with typos everywhere "
                    "else, and would explode on a large customer base).")
    pair_budget: float = Field(25.0, gt=0, description="Pairs per record a broad blocking "
                               "rule may generate.")
    broad_pair_cap: int = Field(5_000_000, ge=0, description="Pairs a broad blocking rule "
                                "may generate at most, whatever the number of records.")
    training_blocks: list[list[str]] = Field(
        default_factory=lambda: [list(r) for r in DEFAULT_TRAINING_BLOCKS], min_length=1,
        description="Blocking of the EM training sessions (unsupervised, no labels).")
    fallback_training_blocks: list[list[str]] = Field(
        default_factory=lambda: [list(r) for r in DEFAULT_FALLBACK_TRAINING_BLOCKS],
        description="Further EM sessions, run only for comparisons the training blocks "
                    "left untrained.")
    comparisons: list[str] = Field(default_factory=lambda: list(COMPARISONS), min_length=1)
    em_pairs: int = Field(2_000_000, ge=10_000, description="Each EM session trains on at "
                          "most about this many blocked pairs (a deterministic sample).")
    u_pairs: int = Field(2_000_000, ge=10_000, description="Random pairs for the u "
                         "probabilities.")
    seed: int = 42
    key_prefix: str = Field("K", pattern=r"^[A-Z]{1,4}$")
    key_digits: int = Field(9, ge=6, le=15)
    survivorship: Survivorship = Field(default_factory=Survivorship)

    @field_validator("blocking_rules", "broad_blocking_rules", "training_blocks",
                     "fallback_training_blocks")
    @classmethod
    def _columns(cls, v: list[list[str]]) -> list[list[str]]:
        for rule in v:
            if not rule:
                raise ValueError(_("a blocking rule needs at least one column"))
            for c in rule:
                if c not in BLOCKING_COLUMNS:
                    raise ValueError(_("unknown blocking column {c!r}; known: {known}").format(
                        c=c, known=", ".join(BLOCKING_COLUMNS)))
        return v

    @field_validator("comparisons")
    @classmethod
    def _comparisons(cls, v: list[str]) -> list[str]:
        for c in v:
            if c not in COMPARISONS:
                raise ValueError(_("unknown comparison {c!r}; known: {known}").format(
                    c=c, known=", ".join(COMPARISONS)))
        return v

    @field_validator("review_threshold")
    @classmethod
    def _below_match(cls, v: float, info: ValidationInfo) -> float:
        m = info.data.get("match_threshold")
        if m is not None and v >= m:
            raise ValueError(_("must be below match_threshold ({m}); got {r}").format(m=m, r=v))
        return v

    def rule_for(self, field: str) -> FieldRule:
        """The survivorship rule of a golden-record field."""
        return self.survivorship.fields.get(field, self.survivorship.default)

    def priority_for(self, field: str) -> list[str]:
        rule = self.rule_for(field)
        return list(rule.sources or self.survivorship.source_priority)

    # -- reading ----------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: Any, where: str = "identity spec") -> IdentitySpec:
        return validated(cls, data or {}, where, _("identity spec"))

    @classmethod
    def load(cls, path: str | Path) -> IdentitySpec:
        data = read_yaml(path, _("Identity spec file {path} not found."))
        return cls.parse(data, str(path))
