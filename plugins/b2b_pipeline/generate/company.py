"""The simulation of one client account over the whole period: its CRM records and its billing.

Everything an account does comes from its own random generator, seeded by
(seed, account index), so accounts can be simulated one at a time, in any
order, with the same result. The account's records are collected in a `Log`
(a few hundred rows at most) and written out before the next account starts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from . import names
from .billing import AccountRef, Billing
from .catalog import (
    CHANNEL_WEIGHTS,
    CHANNELS,
    DEAL_TITLES_EN,
    DEAL_TITLES_RU,
    EXPANSION,
    EXPANSION_SOURCES,
    EXPANSION_TITLES,
    FIRST_TOUCH_CHANNELS,
    FIRST_TOUCH_WEIGHTS,
    LEAD_SOURCE_WEIGHTS,
    LEAD_SOURCES,
    LOST_REASONS,
    LOST_REASONS_EN,
    NEW_BUSINESS,
    POST_SALE,
    Rep,
    owner_at,
    stages_at,
)
from .clock import DAY, HOUR, MINUTE, at_work, date_text, later
from .funnel import walk
from .versions import Log, Record

LATIN_SHARE = 0.22  # accounts with a Latin (foreign) name
MEAN_GAP_DAYS = {"prospect": 180.0, "customer": 100.0}  # mean days between an account's deal starts
JUNK_SHARE = 0.02  # accounts created by mistake or duplicates: deleted later
ORPHAN_CUSTOMER = 0.03  # chance per account of one billing-only customer
DELETED_DEAL = 0.005
DELETED_ACTIVITY = 0.005
FIRST_TOUCH_BEFORE = 0.45  # new-business deals whose first touch precedes their creation
MAX_DEALS = 999
_COUNTRIES_RU = (("RU", 0.9), ("KZ", 0.04), ("BY", 0.04), ("UZ", 0.02))
_COUNTRIES_LATIN = (("RU", 0.35), ("DE", 0.2), ("US", 0.15), ("AE", 0.1), ("GB", 0.1), ("NL", 0.1))
_TLD = {"RU": "ru", "KZ": "kz", "BY": "by", "UZ": "uz", "DE": "de", "US": "com", "AE": "ae", "GB": "co.uk", "NL": "nl"}


@dataclass(frozen=True)
class World:
    """What every account shares."""

    seed: int
    t_start: int
    horizon: int  # 00:00 UTC after the last simulated day
    reps: tuple[Rep, ...]
    inn_salt: int


def _pick(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for value, p in pairs:
        if x < p:
            return value
        x -= p
    return pairs[-1][0]


def _bool(rng: random.Random, value: bool, style: int) -> str:
    return ("1" if value else "0") if style else ("true" if value else "false")


class Account:
    def __init__(self, world: World, index: int) -> None:
        self.world = world
        self.index = index
        self.rng = rng = random.Random(f"{world.seed}:account:{index}")
        self.log = Log(world.horizon)
        self.id = str(100_000 + index)
        self.latin = rng.random() < LATIN_SHARE
        self.name, brand = names.company(rng, self.latin)
        self.country = _pick(rng, _COUNTRIES_LATIN if self.latin else _COUNTRIES_RU)
        if self.latin:
            self.currency = _pick(rng, (("USD", 0.45), ("EUR", 0.35), ("RUB", 0.2)))
        else:
            self.currency = _pick(rng, (("RUB", 0.93), ("USD", 0.04), ("EUR", 0.03)))
        span = world.horizon - world.t_start
        self.created = at_work(rng, world.t_start + int(span * rng.random()))
        inn = names.inn(index, world.inn_salt) if rng.random() < (0.92 if self.country == "RU" else 0.1) else ""
        tld = _TLD[self.country] if rng.random() < 0.8 else "com"
        dom = names.domain(brand, index + 1, tld) if rng.random() < 0.94 else ""
        employees = min(200_000, max(1, int(rng.lognormvariate(math.log(120), 1.3))))
        self.size = employees
        self.owner = owner_at(rng, world.reps, self.created)
        self.bool_style = int(rng.random() < 0.3)  # this CRM writes 1/0 for some accounts' booleans
        row = {
            "account_id": self.id,
            "name": self.name,
            "tax_id": names.written_inn(rng, inn) if inn else "",
            "domain": dom,
            "industry": rng.choice(names.INDUSTRIES_EN if self.latin else names.INDUSTRIES_RU),
            "country": self.country,
            "employee_count": str(employees),
            "owner_id": self.owner.user_id,
            "created_at": self.created,
            "is_deleted": _bool(rng, False, self.bool_style),
        }
        enrich_later = rng.random() < 0.3
        if enrich_later:  # filled in by a later enrichment
            row["employee_count"], row["industry"] = "", ""
        self.record = Record("accounts", self.id, self.created, row)
        if enrich_later:
            t = at_work(rng, self.created + rng.randint(1, 60) * DAY)
            self.record.change(t, employee_count=str(employees), industry=rng.choice(names.INDUSTRIES_RU))
        self.billing = Billing(
            rng, self.log, AccountRef(self.id, self.name, inn, dom, index), world.horizon, world.inn_salt
        )
        self.contacts: list[tuple[Record, str]] = []  # (record, natural deal role)
        self.n_activity = 0
        self.won_closes: list[int] = []
        self.deals: list[Record] = []
        self.activities: list[Record] = []

    # ------------------------------------------------------------ people
    def owner_for(self, t: int) -> Rep:
        if self.owner.active(t):
            return self.owner
        self.owner = owner_at(self.rng, self.world.reps, t)
        self.record.change(t, owner_id=self.owner.user_id)
        return self.owner

    def new_contact(self, t: int) -> tuple[Record, str]:
        rng = self.rng
        full, first, last = names.person(rng, self.latin)
        title, role = rng.choice(names.JOB_TITLES_EN if self.latin else names.JOB_TITLES_RU)
        dom = self.record.row["domain"] or rng.choice(("mail.ru", "yandex.ru", "gmail.com"))
        cid = str((self.index + 1) * 1000 + len(self.contacts))
        row = {
            "contact_id": cid,
            "account_id": self.id if rng.random() < 0.97 else "",
            "full_name": full,
            "email": names.email(first, last, str(dom), rng) if rng.random() < 0.9 else "",
            "phone": names.phone(rng) if rng.random() < 0.7 else "",
            "job_title": title if rng.random() < 0.9 else "",
            "created_at": t,
            "is_deleted": _bool(rng, False, self.bool_style),
        }
        rec = Record("contacts", cid, t, row)
        if rng.random() < 0.04:
            title2, role = rng.choice(names.JOB_TITLES_RU)
            rec.change(at_work(rng, t + rng.randint(30, 400) * DAY), job_title=title2)
        if rng.random() < 0.02:
            rec.change(at_work(rng, t + rng.randint(30, 600) * DAY), is_deleted=_bool(rng, True, self.bool_style))
        self.contacts.append((rec, role))
        return rec, role

    def deal_people(self, deal_id: str, created: int, relationship_at: int | None) -> list[str]:
        """Attach 1-4 contacts to a deal with their roles; the contact ids."""
        rng = self.rng
        n = rng.choices((1, 2, 3, 4), weights=(20, 35, 30, 15))[0]
        chosen: list[tuple[Record, str]] = []
        for _ in range(n):
            pool = [c for c in self.contacts if c not in chosen and c[0].t0 <= created]
            if not pool or rng.random() < 0.3:
                chosen.append(self.new_contact(created))
            else:
                chosen.append(rng.choice(pool))
        roles = [role if rng.random() < 0.8 else rng.choice(("influencer", "user", "other")) for _, role in chosen]
        if "decision_maker" not in roles and rng.random() < 0.8:
            roles[0] = "decision_maker"
        for k, ((rec, _), role) in enumerate(zip(chosen, roles, strict=True)):
            added = created if (k < 2 or relationship_at is None) else relationship_at
            dc = Record(
                "deal_contacts",
                (deal_id, rec.key),  # type: ignore[arg-type]
                added,
                {"deal_id": deal_id, "contact_id": rec.key, "role": role if rng.random() < 0.95 else ""},
            )
            if rng.random() < 0.05:
                dc.change(at_work(rng, added + rng.randint(5, 40) * DAY), role="decision_maker")
            dc.emit(self.log)
        return [rec.key for rec, _ in chosen]

    # ------------------------------------------------------------ activities
    def activity(
        self, t: int, channel: str, deal_id: str, contact_id: str, owner_id: str, link_at: int | None = None
    ) -> None:
        rng = self.rng
        self.n_activity += 1
        aid = str((self.index + 1) * 100_000 + self.n_activity)
        logged = t + rng.randrange(3 * HOUR) + MINUTE
        row = {
            "activity_id": aid,
            "deal_id": deal_id,
            "account_id": self.id,
            "contact_id": contact_id,
            "owner_id": owner_id,
            "channel": channel,
            "occurred_at": t,
            "is_deleted": "false",
        }
        if link_at is not None:  # a first touch before the deal (and maybe the account) existed
            row.update(deal_id="", contact_id="", account_id=self.id if t >= self.created else "")
        rec = Record("activities", aid, logged, row)
        if link_at is not None:
            rec.change(max(link_at, logged + MINUTE), deal_id=deal_id, contact_id=contact_id, account_id=self.id)
        if rng.random() < DELETED_ACTIVITY:
            rec.change(logged + rng.randint(1, 30) * DAY, is_deleted="true")
        self.activities.append(rec)

    # ------------------------------------------------------------ deals
    def base_amount(self, pipeline: str) -> int:
        """A deal's first estimate, in cents of the account's currency (an annual contract value)."""
        rng = self.rng
        rub = 450_000 * (self.size / 100) ** 0.3 * math.exp(rng.gauss(0.0, 0.7))
        if pipeline == EXPANSION:
            rub *= rng.uniform(0.2, 0.6)
        value = rub / {"RUB": 1.0, "USD": 90.0, "EUR": 100.0}[self.currency]
        step = 1000 if self.currency == "RUB" else 10
        return max(step, round(value / step) * step) * 100

    def deal(self, n: int, created: int) -> int:
        """Simulate deal number `n` created at `created`; the time it ends (closes or is deleted)."""
        rng = self.rng
        customer = self.billing.live_sub(created) is not None or any(t < created for t in self.won_closes)
        pipeline = EXPANSION if customer else NEW_BUSINESS
        deal_id = str((self.index + 1) * 1000 + n)
        owner = self.owner_for(created)
        amount = self.base_amount(pipeline)
        short = self.name.split("«")[-1].split("»")[0].strip('"')
        if pipeline == EXPANSION:
            title = f"{rng.choice(EXPANSION_TITLES)} — {short}"
            source = rng.choice(EXPANSION_SOURCES)
        else:
            title = f"{rng.choice(DEAL_TITLES_EN if self.latin else DEAL_TITLES_RU)} — {short}"
            source = rng.choices(LEAD_SOURCES, weights=LEAD_SOURCE_WEIGHTS)[0]
        cents = rng.random() < 0.1
        path = walk(rng, pipeline, created)
        row = {
            "deal_id": deal_id,
            "account_id": self.id,
            "owner_id": owner.user_id,
            "deal_name": title if rng.random() < 0.97 else "",
            "pipeline_id": pipeline,
            "stage_id": path.entries[0][1].stage_id,
            "amount": _amount(amount, cents),
            "currency": self.currency,
            "status": "open",
            "created_at": created,
            "closed_at": "",
            "expected_close_date": date_text(created + rng.randint(45, 120) * DAY),
            "lost_reason": "",
            "lead_source": source if rng.random() < 0.9 else "",
            "is_deleted": _bool(rng, False, self.bool_style),
        }
        rec = Record("deals", deal_id, created, row)
        self.deals.append(rec)
        if rng.random() < DELETED_DEAL:  # a duplicate, deleted soon after
            t_del = later(rng, at_work(rng, created + rng.randint(0, 7) * DAY), created)
            rec.change(t_del, is_deleted=_bool(rng, True, self.bool_style))
            self._history(deal_id, path.entries[:1])
            return t_del
        self._history(deal_id, path.entries)
        for t, stage in path.entries[1:]:
            rec.change(t, stage_id=stage.stage_id)
        for t, factor in path.revisions:
            amount = max(
                100, int(amount * factor) // 10_000 * 10_000 if self.currency == "RUB" else int(amount * factor)
            )
            rec.change(t, amount=_amount(amount, cents), expected_close_date=date_text(t + rng.randint(20, 60) * DAY))
        relationship_at = next((t for t, s in path.entries if s.level >= 3), None)
        contact_ids = self.deal_people(deal_id, created, relationship_at)
        end_t = path.closed_at
        if path.outcome == "won":
            rec.change(end_t, status="won", closed_at=end_t)
            self.won_closes.append(end_t)
            paid = self.billing.on_won(deal_id, end_t, amount, self.currency)
            if paid is not None:
                post = stages_at(pipeline, POST_SALE)[0]
                self._history(deal_id, [(paid, post)])
                rec.change(paid, stage_id=post.stage_id)
            for _ in range(rng.randint(0, 3)):  # onboarding after the sale
                t = at_work(rng, end_t + rng.randint(2, 60) * DAY)
                self.activity(
                    t, rng.choice(("meeting", "call", "email")), deal_id, rng.choice(contact_ids), owner.user_id
                )
        else:
            reasons = LOST_REASONS_EN if self.latin and rng.random() < 0.7 else LOST_REASONS[path.lost_level]
            rec.change(
                end_t, status="lost", closed_at=end_t, lost_reason=rng.choice(reasons) if rng.random() < 0.9 else ""
            )
        # touches over the cycle
        days = max(1, (end_t - created) // DAY)
        n_act = 1 + min(30, int(days / 7 * rng.uniform(0.5, 1.5)))
        for _ in range(n_act):
            t = at_work(rng, created + rng.randrange(days) * DAY, weekend_ok=0.03)
            channel = rng.choices(CHANNELS, weights=CHANNEL_WEIGHTS)[0]
            contact = rng.choice(contact_ids) if rng.random() < 0.85 else ""
            self.activity(t, channel, deal_id, contact, owner.user_id)
        if pipeline == NEW_BUSINESS and rng.random() < FIRST_TOUCH_BEFORE:
            for _ in range(rng.randint(1, 2)):
                t = at_work(rng, created - rng.randint(1, 40) * DAY)
                channel = rng.choices(FIRST_TOUCH_CHANNELS, weights=FIRST_TOUCH_WEIGHTS)[0]
                self.activity(t, channel, deal_id, contact_ids[0], owner.user_id, link_at=created)
        return end_t

    def _history(self, deal_id: str, entries: list) -> None:
        for t, stage in entries:
            self.log.event(
                "deal_stage_history",
                (deal_id, stage.stage_id, t),
                t,
                {"deal_id": deal_id, "stage_id": stage.stage_id, "entered_at": t},
            )

    # ------------------------------------------------------------ the whole life
    def run(self) -> Log:
        rng, world = self.rng, self.world
        junk = rng.random() < JUNK_SHARE
        propensity = math.exp(rng.gauss(0.0, 0.5))
        for _ in range(rng.randint(1, 3)):
            self.new_contact(self.created)
        t = later(rng, at_work(rng, self.created + rng.randint(0, 3) * DAY), self.created)
        n = 0
        last_end = self.created
        while t < world.horizon and n < (2 if junk else MAX_DEALS):
            last_end = max(last_end, self.deal(n, t))
            n += 1
            state = "customer" if self.billing.live_sub(t) is not None else "prospect"
            gap = rng.expovariate(propensity / MEAN_GAP_DAYS[state]) * DAY
            t = later(rng, at_work(rng, t + int(gap)), t)
        for _ in range(rng.choices((0, 1, 2, 3), weights=(40, 30, 20, 10))[0]):  # marketing touches
            t = at_work(rng, self.created + rng.randrange(max(DAY, world.horizon - self.created)))
            self.activity(t, rng.choice(("webinar", "event", "email", "social")), "", "", "")
        if junk and not self.won_closes:
            t_del = at_work(rng, last_end + rng.randint(14, 120) * DAY)
            flag = _bool(rng, True, self.bool_style)
            for rec in (self.record, *self.deals, *(c for c, _ in self.contacts)):
                rec.change(t_del, is_deleted=flag)
            for rec in self.activities:
                rec.change(t_del, is_deleted="true")
        if rng.random() < ORPHAN_CUSTOMER:
            t0 = at_work(rng, world.t_start + rng.randrange(world.horizon - world.t_start))
            self.billing.orphan_customer(t0, self.currency)
        self.record.emit(self.log)
        for rec, _ in self.contacts:
            rec.emit(self.log)
        for rec in self.deals:
            rec.emit(self.log)
        for rec in self.activities:
            rec.emit(self.log)
        self.billing.emit()
        return self.log


def _amount(cents: int, with_cents: bool) -> str:
    if with_cents:
        cents += 50 if cents % 100 == 0 else 0
    return f"{cents // 100}.{cents % 100:02d}"


def simulate_account(world: World, index: int) -> Log:
    """All record versions of account `index`, up to the horizon."""
    return Account(world, index).run()
