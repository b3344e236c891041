"""The seller's fixed set-up: its two sales pipelines and their stages, and its sales team."""

from __future__ import annotations

import random
from dataclasses import dataclass

from b2b_pipeline.filedrop.spec import CANONICAL_STAGE_KEYS

from . import names
from .clock import DAY, HOUR, at_work

LEVEL = {key: i + 1 for i, key in enumerate(CANONICAL_STAGE_KEYS)}  # lead 1 .. post_sale 7
CLOSING, POST_SALE = LEVEL["closing"], LEVEL["post_sale"]


@dataclass(frozen=True)
class Stage:
    stage_id: str
    pipeline_id: str
    name: str
    display_order: int
    probability: str  # as written: "0.35"
    canonical: str  # a stage_key of docs/metrics.md, or "lost"
    level: int  # 1..7 for the canonical stages, 0 for lost


NEW_BUSINESS = "new_business"
EXPANSION = "expansion"

# (name, canonical stage, probability). Russian names in the new-business pipeline (as a
# Russian team set up its CRM), English ones in the expansion pipeline (account management).
_PIPELINES: dict[str, tuple[tuple[str, str, str], ...]] = {
    NEW_BUSINESS: (
        ("Новый лид", "lead", "0.05"),
        ("Квалификация", "qualification", "0.1"),
        ("Первая встреча", "relationship", "0.2"),
        ("Демонстрация", "relationship", "0.25"),
        ("КП отправлено", "proposal", "0.4"),
        ("Согласование договора", "negotiation", "0.65"),
        ("Договор подписан", "closing", "1"),
        ("Внедрение и сопровождение", "post_sale", "1"),
        ("Закрыто и не реализовано", "lost", "0"),
    ),
    EXPANSION: (
        ("Opportunity identified", "lead", "0.1"),
        ("Discovery", "qualification", "0.2"),
        ("Stakeholder alignment", "relationship", "0.35"),
        ("Proposal sent", "proposal", "0.5"),
        ("Negotiation", "negotiation", "0.75"),
        ("Closed won", "closing", "1"),
        ("Onboarding", "post_sale", "1"),
        ("Closed lost", "lost", "0"),
    ),
}
_PREFIX = {NEW_BUSINESS: "nb", EXPANSION: "ex"}


def _build() -> dict[str, tuple[Stage, ...]]:
    out = {}
    for pipeline, rows in _PIPELINES.items():
        out[pipeline] = tuple(
            Stage(f"{_PREFIX[pipeline]}_{i + 1:02d}", pipeline, name, i + 1, prob, canon, LEVEL.get(canon, 0))
            for i, (name, canon, prob) in enumerate(rows)
        )
    return out


PIPELINES: dict[str, tuple[Stage, ...]] = _build()
STAGES: tuple[Stage, ...] = tuple(s for stages in PIPELINES.values() for s in stages)


_BY_LEVEL: dict[tuple[str, int], tuple[Stage, ...]] = {
    (p, level): tuple(s for s in stages if s.level == level) for p, stages in PIPELINES.items() for level in range(8)
}


def stages_at(pipeline: str, level: int) -> tuple[Stage, ...]:
    """The source stages of `pipeline` mapped to canonical `level` (0 = lost), in display order."""
    return _BY_LEVEL[(pipeline, level)]


CHANNELS = ("email", "call", "meeting", "webinar", "social", "event", "other")
CHANNEL_WEIGHTS = (34, 30, 16, 5, 5, 4, 6)
FIRST_TOUCH_CHANNELS = ("webinar", "event", "email", "social", "call")
FIRST_TOUCH_WEIGHTS = (25, 20, 30, 15, 10)

LEAD_SOURCES = ("website", "webinar", "referral", "cold_call", "event", "partner", "inbound_email")
LEAD_SOURCE_WEIGHTS = (28, 12, 15, 18, 8, 10, 9)
EXPANSION_SOURCES = ("upsell", "cross_sell", "renewal", "account_management")

LOST_REASONS = {
    1: ("Не целевой клиент", "Не отвечает", "Дубль"),
    2: ("Не целевой клиент", "Нет бюджета", "Не отвечает"),
    3: ("Нет бюджета", "Не отвечает", "Выбрали конкурента", "Проект отложен"),
    4: ("Не устроила цена", "Выбрали конкурента", "Проект отложен", "Нет бюджета"),
    5: ("Не устроила цена", "Выбрали конкурента", "Не согласовали условия", "Проект отложен"),
}
LOST_REASONS_EN = ("No budget", "Chose a competitor", "Price too high", "No decision", "Unresponsive")

DEAL_TITLES_RU = ("Внедрение CRM", "Лицензии", "Подписка на платформу", "Пилотный проект", "Интеграция")
DEAL_TITLES_EN = ("Platform subscription", "Licenses", "Pilot project", "Integration")
EXPANSION_TITLES = ("Доп. лицензии", "Расширение тарифа", "Модуль аналитики", "Продление", "Add-on seats")

PLANS = (("Старт", 0), ("Бизнес", 150_000_00), ("Корпоративный", 600_000_00))  # by annual value in RUB
ADDON_PLAN = "Доп. модуль"

_TEAMS = ("Москва", "Санкт-Петербург", "Регионы", "Enterprise", "SMB", "Key Accounts")


@dataclass(frozen=True)
class Rep:
    user_id: str
    full_name: str
    email: str
    team: str
    hired_at: int
    left_at: int | None  # deactivated then (is_active = false)

    def active(self, t: int) -> bool:
        return self.hired_at <= t and (self.left_at is None or t < self.left_at)


def sales_team(seed: int, t_start: int, t_end: int) -> tuple[Rep, ...]:
    """20 to 60 reps in teams; most there from the start, some hired later, a few who left."""
    rng = random.Random(f"{seed}:team")
    n = rng.randint(24, 56)
    span = t_end - t_start
    reps = []
    used: set[str] = set()
    for i in range(n):
        _, first, last = names.person(rng, latin=False)
        while (first, last) in used:
            _, first, last = names.person(rng, latin=False)
        used.add((first, last))
        r = rng.random()
        hired = t_start + rng.randrange(8 * HOUR) if i < 3 or r < 0.7 else at_work(rng, t_start + rng.randrange(span))
        left = None
        if i >= 3 and rng.random() < 0.15:
            left_t = at_work(rng, hired + 90 * DAY + rng.randrange(max(DAY, span)))
            left = left_t if left_t < t_end else None
        email = f"{names.slug(first, 12)}.{names.slug(last, 16)}@seller.example"
        reps.append(Rep(f"u{i + 1:03d}", f"{first} {last}", email, _TEAMS[i % len(_TEAMS)], hired, left))
    return tuple(reps)


def owner_at(rng: random.Random, reps: tuple[Rep, ...], t: int) -> Rep:
    """A rep active at `t` (the first reps never leave, so there always is one)."""
    for _ in range(20):
        rep = rng.choice(reps)
        if rep.active(t):
            return rep
    return next(r for r in reps if r.active(t)) if any(r.active(t) for r in reps) else reps[0]
