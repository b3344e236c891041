"""The billing side of one account: customers, subscriptions from won deals, invoices, churn.

- A won deal opens a subscription (sometimes after a trial), or upsells the live
  one (more MRR, or an add-on subscription), and is invoiced once for its
  set-up fee (an invoice with `deal_id`).
- Every subscription is invoiced monthly while it runs; most invoices are paid on
  time, some late (the subscription is `past_due` meanwhile), a few never.
- Each month a live subscription is canceled with the account's churn hazard
  (`CHURN_HAZARD`); some cancellations follow an unpaid invoice.
- Contracts renew every 12 months, with a price indexation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from . import names
from .catalog import ADDON_PLAN, PLANS
from .clock import DAY, HOUR, MINUTE, add_months, at_work, date_of, epoch_of, later
from .versions import Log, Record

CHURN_HAZARD = (0.012, 0.045)  # monthly cancellation chance of a live subscription: uniform per account
TRIAL_SHARE = 0.25  # new subscriptions that start with a trial
TRIAL_CONVERTS = 0.88
UPSELL_SHARE = 0.75  # a won deal of a live customer raises its MRR; otherwise an add-on subscription
PAST_DUE_CHURN = 0.4  # cancellations that come after an unpaid invoice
SECOND_CUSTOMER = 0.04  # a later new subscription billed to a second legal entity of the account
LINK_METHODS = (("crm_account_id", 0.74), ("tax_id", 0.14), ("domain", 0.12))
MIDNIGHT_MSK = 0.08  # payments booked just after midnight Moscow time (the previous day in UTC)
# a monthly invoice is paid on time / late / never (the rest)
PAY_ON_TIME, PAY_LATE = 0.82, 0.14
DRAFT_FIRST = 0.3  # invoices that exist as a draft for one to five days before they are issued
VOID_SHARE = 0.01
_FX_GUESS = {"RUB": 1.0, "USD": 90.0, "EUR": 100.0}  # only to choose a plan by contract size


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def month_later(t: int, months: int) -> int:
    """The same time of day, `months` calendar months after `t`."""
    return epoch_of(add_months(date_of(t), months)) + t % DAY


def billing_style(rng: random.Random) -> str:
    """How a billing record writes its timestamps: UTC with `Z`, without offset, or in Moscow time."""
    r = rng.random()
    return "z" if r < 0.55 else ("naive" if r < 0.85 else "msk")


def plan_for(annual_cents: int, currency: str) -> str:
    rub = annual_cents * _FX_GUESS[currency]
    plan = PLANS[0][0]
    for name, floor in PLANS:
        if rub >= floor:
            plan = name
    return plan


@dataclass
class Sub:
    record: Record
    customer_id: str
    currency: str
    started: int
    billing_start: int  # end of the trial, or the start
    cancel_at: int | None  # None: runs past the horizon
    unpaid_last: bool  # canceled after its last invoice went unpaid
    trial_failed: bool
    periods: int  # monthly invoices before the cancellation
    net_days: int
    changes: list[tuple[int, int, str]] = field(default_factory=list)  # (time, MRR delta, plan)

    def live_at(self, t: int) -> bool:
        return self.started <= t and (self.cancel_at is None or t < self.cancel_at)


@dataclass(frozen=True)
class AccountRef:
    """What billing knows of the CRM account (to link customers to it)."""

    account_id: str
    name: str
    inn: str  # digits, "" when the account has none
    domain: str  # "" when none
    index: int


class Billing:
    def __init__(self, rng: random.Random, log: Log, account: AccountRef, horizon: int, inn_salt: int):
        self.rng = rng
        self.log = log
        self.account = account
        self.horizon = horizon
        self.inn_salt = inn_salt
        self.hazard = rng.uniform(*CHURN_HAZARD)
        self.style = billing_style(rng)
        self.net_days = rng.choice((14, 14, 14, 30, 30, 7))
        self.customers: list[Record] = []
        self.subs: list[Sub] = []
        self._n_inv = 0
        self._b36 = names.to_base36(account.index + 1)

    # ------------------------------------------------------------ customers
    def _customer(self, t: int, currency: str, second: bool = False) -> str:
        rng, acc = self.rng, self.account
        k = len(self.customers)
        cid = f"cus_{self._b36}{k:02d}"
        name = names.billing_legal_name(rng, acc.name)
        row = {"customer_id": cid, "name": name, "currency": currency, "created_at": t}
        method = "crm_account_id"
        if not second:
            x = rng.random()
            for m, p in LINK_METHODS:
                if x < p:
                    method = m
                    break
                x -= p
        if (method == "tax_id" and not acc.inn) or (method == "domain" and not acc.domain):
            method = "crm_account_id"
        if method == "crm_account_id":
            row["crm_account_id"] = acc.account_id
            if second:  # a second legal entity (a branch) of the same client
                row["name"] = f"{name} (филиал)"
                row["tax_id"] = names.inn(acc.index + 250_000_000, self.inn_salt)
            else:
                if acc.inn and rng.random() < 0.7:
                    row["tax_id"] = acc.inn
                if acc.domain and rng.random() < 0.6:
                    row["email_domain"] = acc.domain
        elif method == "tax_id":
            row["tax_id"] = names.written_inn(rng, acc.inn)
            if rng.random() < 0.3:
                row["email_domain"] = rng.choice(("mail.ru", "yandex.ru", "gmail.com"))
        else:
            r = rng.random()
            row["email_domain"] = "www." + acc.domain if r < 0.2 else (acc.domain.upper() if r < 0.35 else acc.domain)
        rec = Record("customers", cid, t, row, self.style)
        self.customers.append(rec)
        return cid

    def orphan_customer(self, t: int, currency: str) -> None:
        """A billing-only customer: no CRM account matches it by any rule."""
        rng = self.rng
        k = len(self.customers)
        cid = f"cus_{self._b36}{k:02d}"
        name, brand = names.company(rng, latin=rng.random() < 0.2)
        row = {"customer_id": cid, "name": name, "currency": currency, "created_at": t}
        if rng.random() < 0.6:
            row["tax_id"] = names.inn(self.account.index + 500_000_000, self.inn_salt)
        if rng.random() < 0.7:
            row["email_domain"] = names.domain(brand, self.account.index + 1, "ru", billing_only=True)
        self.customers.append(Record("customers", cid, t, row, self.style))
        annual = int(rng.lognormvariate(math.log(300_000_00 / _FX_GUESS[currency]), 0.7))
        self._new_sub(cid, t, annual // 12, currency, plan_for(annual, currency))

    # ------------------------------------------------------------ subscriptions
    def live_sub(self, t: int) -> Sub | None:
        for sub in self.subs:
            if sub.live_at(t) and not sub.trial_failed:
                return sub
        return None

    def _new_sub(self, cid: str, t: int, mrr: int, currency: str, plan: str) -> Sub:
        rng = self.rng
        sid = f"sub_{self._b36}{len(self.subs):03d}"
        trial = rng.random() < TRIAL_SHARE
        billing_start, trial_failed = t, False
        row = {
            "subscription_id": sid,
            "customer_id": cid,
            "plan": plan,
            "status": "trialing" if trial else "active",
            "mrr_amount": money(mrr),
            "currency": currency,
            "started_at": t,
            "canceled_at": "",
        }
        rec = Record("subscriptions", sid, t, row, self.style)
        cancel_at: int | None
        unpaid_last = False
        months = 0
        if trial:
            billing_start = later(rng, at_work(rng, t + rng.choice((14, 30)) * DAY), t)
            trial_failed = rng.random() >= TRIAL_CONVERTS
            if trial_failed:
                rec.change(billing_start, status="canceled", canceled_at=billing_start)
            else:
                rec.change(billing_start, status="active")
        if trial_failed:
            cancel_at = billing_start
        else:
            # months of paid service before the cancellation: geometric with the monthly hazard
            months = 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - self.hazard))
            unpaid_last = rng.random() < PAST_DUE_CHURN
            if unpaid_last:
                due = month_later(billing_start, months - 1) + self.net_days * DAY
                cancel_at = later(rng, at_work(rng, due + rng.randint(15, 45) * DAY), due)
            else:
                end_of_term = month_later(billing_start, months)
                cancel_at = later(rng, at_work(rng, end_of_term - rng.randint(0, 10) * DAY), billing_start)
            if cancel_at >= self.horizon:
                cancel_at = None
            else:
                rec.change(cancel_at, status="canceled", canceled_at=cancel_at)
        sub = Sub(rec, cid, currency, t, billing_start, cancel_at, unpaid_last, trial_failed, months, self.net_days)
        sub.changes.append((t, mrr, plan))
        self.subs.append(sub)
        return sub

    def on_won(self, deal_id: str, t: int, amount_cents: int, currency: str) -> int | None:
        """Bill a deal won at `t`; the time its set-up invoice is paid (None if never)."""
        rng = self.rng
        setup = int(amount_cents * rng.uniform(0.1, 0.25))
        annual = amount_cents - setup
        mrr = max(100, annual // 12)
        start = later(rng, at_work(rng, t + rng.randint(0, 5) * DAY), t)
        live = self.live_sub(t)
        if live is not None and live.currency == currency and rng.random() < UPSELL_SHARE:
            live.changes.append((start, mrr, ""))
            cid = live.customer_id
        elif live is not None and live.currency == currency:
            cid = live.customer_id
            self._new_sub(cid, start, mrr, currency, ADDON_PLAN)
        else:
            existing = [c for c in self.customers if c.t0 <= t]  # deals close out of order
            if not existing:
                cid = self._customer(t, currency)
            elif rng.random() < SECOND_CUSTOMER:
                cid = self._customer(t, currency, second=True)
            else:
                cid = existing[-1].key
            self._new_sub(cid, start, mrr, currency, plan_for(annual, currency))
        return self._invoice(cid, None, deal_id, currency, setup, t + rng.randint(0, 3) * DAY, t)

    # ------------------------------------------------------------ invoices
    def _pay_time(self, day_t: int) -> tuple[int, bool]:
        """A payment on the UTC day of `day_t`: office hours, or just after midnight in Moscow."""
        rng = self.rng
        if rng.random() < MIDNIGHT_MSK:
            # 00:00-00:40 in Moscow on the next day is 21:00-21:40 UTC on this one
            return day_t - day_t % DAY + 21 * HOUR + rng.randrange(40 * MINUTE), True
        return at_work(rng, day_t, weekend_ok=0.1), False

    def _invoice(
        self,
        cid: str,
        sub: Sub | None,
        deal_id: str,
        currency: str,
        amount: int,
        issue: int,
        not_before: int,
        *,
        unpaid: bool = False,
        cancel_at: int | None = None,
    ) -> int | None:
        """Write one invoice's versions; the time it was paid, or None."""
        rng = self.rng
        self._n_inv += 1
        iid = f"in_{self._b36}{self._n_inv:05d}"
        issue = later(rng, at_work(rng, issue, weekend_ok=0.0), not_before)
        due = issue + (sub.net_days if sub else self.net_days) * DAY
        row = {
            "invoice_id": iid,
            "customer_id": cid,
            "subscription_id": sub.record.key if sub else "",
            "deal_id": deal_id,
            "currency": currency,
            "amount_total": money(amount),
            "amount_paid": "0.00",
            "issued_at": issue,
            "due_at": due,
            "paid_at": "",
        }
        r = rng.random()
        paid: int | None = None
        midnight = False
        if unpaid:
            outcome = "unpaid"
        elif r < VOID_SHARE:
            outcome = "void"
        elif r < PAY_ON_TIME + VOID_SHARE:
            outcome = "on_time"
        elif r < PAY_ON_TIME + PAY_LATE + VOID_SHARE:
            outcome = "late"
        else:
            outcome = "never"
        if outcome == "on_time":
            paid, midnight = self._pay_time(issue + rng.randrange(max(1, (due - issue) // DAY)) * DAY)
        elif outcome == "late":
            paid, midnight = self._pay_time(due + rng.randint(2, 40) * DAY)
        if paid is not None:
            paid = later(rng, paid, issue)
        t0 = issue
        if rng.random() < DRAFT_FIRST:
            drafted = issue - rng.randint(1, 5) * DAY + rng.randrange(HOUR)
            if drafted > not_before:  # not before what it bills existed
                t0 = drafted
        draft = t0 != issue
        style = "msk" if midnight else self.style
        if draft:
            row["status"], row["issued_at"] = "draft", t0
        else:
            row["status"] = "open"
        rec = Record("invoices", iid, t0, row, style)
        if draft:
            rec.change(issue, status="open", issued_at=issue)
        if outcome == "void":
            voided = issue + rng.randint(1, 48) * HOUR
            rec.change(voided, status="void")
            rec.emit(self.log)
            # the corrected invoice replaces it
            return self._invoice(cid, sub, deal_id, currency, amount, voided, voided)
        if paid is not None:
            rec.change(paid, status="paid", amount_paid=money(amount), paid_at=paid)
            if outcome == "late" and sub is not None and sub.live_at(paid):
                sub.record.change(due + DAY, status="past_due")
                sub.record.change(paid, status="active")
        elif outcome == "unpaid" and cancel_at is not None:
            if sub is not None and sub.live_at(due + DAY):
                sub.record.change(due + DAY, status="past_due")
            rec.change(cancel_at, status="uncollectible")
        elif outcome == "never":
            rec.change(due + rng.randint(60, 90) * DAY, status="uncollectible")
        rec.emit(self.log)
        return paid

    def emit(self) -> None:
        """Invoice every subscription month by month and write customers and subscriptions."""
        rng = self.rng
        for sub in self.subs:
            # MRR over time: upsells add to it, renewals every 12 months index it
            end = sub.cancel_at if sub.cancel_at is not None else self.horizon + 6 * DAY
            events: list[tuple[int, int, str]] = sorted(sub.changes)
            renewal_k = 1
            while True:
                renewal = month_later(sub.billing_start, 12 * renewal_k)
                if renewal >= end:
                    break
                events.append((renewal, -1, ""))  # -1: index the price
                renewal_k += 1
            events.sort(key=lambda e: e[0])
            mrr_at: list[tuple[int, int]] = []
            mrr = 0
            for t, delta, plan in events:
                if delta == -1:
                    mrr = int(mrr * rng.uniform(1.0, 1.08))
                else:
                    mrr += delta
                mrr_at.append((t, mrr))
                if t > sub.started and (sub.cancel_at is None or t < sub.cancel_at):
                    values: dict[str, str] = {"mrr_amount": money(mrr)}
                    if plan:
                        values["plan"] = plan
                    sub.record.change(t, **values)
            if not sub.trial_failed:
                period = 0
                while True:
                    issue = month_later(sub.billing_start, period)
                    # (an invoice issued after the horizon may exist as a draft before it)
                    if issue >= end or (sub.periods and period >= sub.periods):
                        break
                    amount = 0
                    for t, m in mrr_at:
                        if t <= issue:
                            amount = m
                    last = sub.cancel_at is not None and period == sub.periods - 1
                    self._invoice(
                        sub.customer_id,
                        sub,
                        "",
                        sub.currency,
                        max(amount, 100),
                        issue,
                        sub.billing_start,
                        unpaid=last and sub.unpaid_last,
                        cancel_at=sub.cancel_at,
                    )
                    period += 1
            sub.record.emit(self.log)
        for rec in self.customers:
            rec.emit(self.log)
