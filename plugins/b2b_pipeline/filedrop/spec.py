"""The file-drop contract of docs/sources.md as data: entities, columns, required values and types.

Both the loader (which validates every row against it) and the demo generator
(which writes files that obey it) read this module, so the contract is written
down exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from b2b_pipeline.stages import StageKeys


class Kind(StrEnum):
    """How a column's text is read."""

    TEXT = "text"
    TIMESTAMP = "timestamp"  # ISO 8601; no offset means UTC
    DATE = "date"  # YYYY-MM-DD
    NUMBER = "number"  # decimal; a decimal comma is allowed in `;` files
    INTEGER = "integer"
    BOOLEAN = "boolean"  # true/false/1/0, empty is false


@dataclass(frozen=True)
class Column:
    """One column of an entity file."""

    name: str
    kind: Kind = Kind.TEXT
    required: bool = False
    allowed: Sequence[str] = ()  # a closed list of values, when not empty
    non_negative: bool = False
    # required only when another column has one of some values, e.g. closed_at when won/lost
    required_when: tuple[str, tuple[str, ...]] | None = None
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class Entity:
    """One entity of a source system (a file named `<name>.csv` or `<name>.jsonl`)."""

    system: str  # "crm" or "billing"
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    versioned: bool = True  # versioned by updated_at
    deletable: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


C = Column
K = Kind

# the stages of the sales cycle, lead to post_sale, as the dbt seed spells them
CANONICAL_STAGE_KEYS: Sequence[str] = StageKeys(ordered_only=True)

ENTITIES: tuple[Entity, ...] = (
    Entity(
        "crm",
        "users",
        (
            C("user_id", required=True),
            C("full_name", required=True),
            C("email"),
            C("team"),
            C("is_active", K.BOOLEAN),
            C("updated_at", K.TIMESTAMP, required=True),
        ),
        key=("user_id",),
    ),
    Entity(
        "crm",
        "accounts",
        (
            C("account_id", required=True),
            C("name", required=True),
            C("tax_id"),
            C("domain"),
            C("industry"),
            C("country"),
            C("employee_count", K.INTEGER, non_negative=True),
            C("owner_id"),
            C("created_at", K.TIMESTAMP, required=True),
            C("updated_at", K.TIMESTAMP, required=True),
            C("is_deleted", K.BOOLEAN),
        ),
        key=("account_id",),
        deletable=True,
    ),
    Entity(
        "crm",
        "contacts",
        (
            C("contact_id", required=True),
            C("account_id"),
            C("full_name"),
            C("email"),
            C("phone"),
            C("job_title"),
            C("created_at", K.TIMESTAMP, required=True),
            C("updated_at", K.TIMESTAMP, required=True),
            C("is_deleted", K.BOOLEAN),
        ),
        key=("contact_id",),
        deletable=True,
    ),
    Entity(
        "crm",
        "stages",
        (
            C("stage_id", required=True),
            C("pipeline_id", required=True),
            C("stage_name", required=True),
            C("display_order", K.INTEGER, required=True),
            C("probability", K.NUMBER, required=True, min_value=0, max_value=1),
            C("canonical_stage", required=True, allowed=StageKeys(ordered_only=False)),
            C("updated_at", K.TIMESTAMP, required=True),
        ),
        key=("stage_id",),
    ),
    Entity(
        "crm",
        "deals",
        (
            C("deal_id", required=True),
            C("account_id", required=True),
            C("owner_id"),
            C("deal_name"),
            C("pipeline_id"),
            C("stage_id", required=True),
            C("amount", K.NUMBER, required=True, non_negative=True),
            C("currency", required=True),
            C("status", required=True, allowed=("open", "won", "lost")),
            C("created_at", K.TIMESTAMP, required=True),
            C("closed_at", K.TIMESTAMP, required_when=("status", ("won", "lost"))),
            C("expected_close_date", K.DATE),
            C("lost_reason"),
            C("lead_source"),
            C("updated_at", K.TIMESTAMP, required=True),
            C("is_deleted", K.BOOLEAN),
        ),
        key=("deal_id",),
        deletable=True,
    ),
    Entity(
        "crm",
        "deal_stage_history",
        (
            C("deal_id", required=True),
            C("stage_id", required=True),
            C("entered_at", K.TIMESTAMP, required=True),
        ),
        key=("deal_id", "stage_id", "entered_at"),
        versioned=False,
    ),
    Entity(
        "crm",
        "deal_contacts",
        (
            C("deal_id", required=True),
            C("contact_id", required=True),
            C("role", allowed=("decision_maker", "influencer", "user", "other")),
            C("updated_at", K.TIMESTAMP, required=True),
        ),
        key=("deal_id", "contact_id"),
    ),
    Entity(
        "crm",
        "activities",
        (
            C("activity_id", required=True),
            C("deal_id"),
            C("account_id"),
            C("contact_id"),
            C("owner_id"),
            C(
                "channel",
                required=True,
                allowed=("email", "call", "meeting", "webinar", "social", "event", "other"),
            ),
            C("occurred_at", K.TIMESTAMP, required=True),
            C("updated_at", K.TIMESTAMP, required=True),
            C("is_deleted", K.BOOLEAN),
        ),
        key=("activity_id",),
        deletable=True,
    ),
    Entity(
        "billing",
        "customers",
        (
            C("customer_id", required=True),
            C("name", required=True),
            C("tax_id"),
            C("email_domain"),
            C("crm_account_id"),
            C("currency"),
            C("created_at", K.TIMESTAMP, required=True),
            C("updated_at", K.TIMESTAMP, required=True),
        ),
        key=("customer_id",),
    ),
    Entity(
        "billing",
        "subscriptions",
        (
            C("subscription_id", required=True),
            C("customer_id", required=True),
            C("plan"),
            C("status", required=True, allowed=("trialing", "active", "past_due", "canceled")),
            C("mrr_amount", K.NUMBER, required=True, non_negative=True),
            C("currency", required=True),
            C("started_at", K.TIMESTAMP, required=True),
            C("canceled_at", K.TIMESTAMP),
            C("updated_at", K.TIMESTAMP, required=True),
        ),
        key=("subscription_id",),
    ),
    Entity(
        "billing",
        "invoices",
        (
            C("invoice_id", required=True),
            C("customer_id", required=True),
            C("subscription_id"),
            C("deal_id"),
            C("status", required=True, allowed=("draft", "open", "paid", "void", "uncollectible")),
            C("currency", required=True),
            C("amount_total", K.NUMBER, required=True, non_negative=True),
            C("amount_paid", K.NUMBER, required=True, non_negative=True),
            C("issued_at", K.TIMESTAMP, required=True),
            C("due_at", K.TIMESTAMP),
            C("paid_at", K.TIMESTAMP, required_when=("status", ("paid",))),
            C("updated_at", K.TIMESTAMP, required=True),
        ),
        key=("invoice_id",),
    ),
    Entity(
        "billing",
        "fx_rates",
        (
            C("rate_date", K.DATE, required=True),
            C("currency", required=True),
            C("rate", K.NUMBER, required=True, non_negative=True),
        ),
        key=("rate_date", "currency"),
        versioned=False,
    ),
)

ENTITY_BY_NAME: dict[tuple[str, str], Entity] = {(e.system, e.name): e for e in ENTITIES}
SYSTEMS: tuple[str, ...] = ("crm", "billing")
# The entities read from the drop whatever the source of their system: no API source serves them.
# Stripe has no rates a finance team books at, so a night whose billing comes from Stripe still reads
# billing/fx_rates (docs/sources.md).
ALWAYS_FROM_FILES: dict[str, tuple[str, ...]] = {"billing": ("fx_rates",)}


def entity(system: str, name: str) -> Entity:
    """The entity `name` of source system `system`; KeyError when the contract has none."""
    return ENTITY_BY_NAME[(system, name)]
