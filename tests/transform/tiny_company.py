"""A tiny hand-built company in the raw layer, with mart values worked out by hand from docs/metrics.md.

As-of date 2026-03-15 (cutoff 2026-03-16 00:00 UTC), reporting currency RUB, USD at 90 from
2026-01-01 and at 95 from 2026-02-01 (a later file replaced 100 with 95).

Accounts and their billing customers (match rules of docs/metrics.md, "Accounts"):
- A1 Альфа      <- C1 (crm_account_id), C6 (tax id 7701-234567 digits-only)  match crm_account_id
- A2 Beta       <- C2 (names missing A999, tax id 500-100 -> 500100)          match tax_id
- A3 Gamma      <- C3 (email domain WWW.Gamma.io -> gamma.io)                 match domain
- A4 Delta      deleted on 2026-02-01 (C5 names it: unmatched)
- A5, A6        both on shared.com, so C4 (shared.com) is ambiguous: unmatched
- C4, C5        billing-only accounts

Deals (D5 deleted; D7 won only after the cutoff, so open as of the run; D8's account is deleted):
- D1 A1 created 01-05, first activity 01-02, won 02-10, 1000 USD (x95), history lead, proposal
- D2 A1 created 01-10, won 03-01, 50000 RUB
- D3 A2 created 01-15, lost 02-20, 10000,00 RUB, history lead, qualification, negotiation, lost
- D4 A3 created 02-03, open in proposal (0.5), 200 USD
- D7 A2 created 02-01, open in negotiation (0.7) as of the run, 3000 RUB, history lead, negotiation
- D8 A4 created 01-20, won 2026-01-25 23:30 -02:00 (= 01-26 UTC), 5000 RUB
Invoices paid: C3-less; C2 5000 RUB on 2026-01-31T22:00 (UTC, no offset); C1 1000 USD on 02-15;
C6 20000 RUB on 03-05; C4's payment is dated after the cutoff (not revenue).
Subscriptions: C1 100 USD from 01-10; C2 5000 RUB 01-20..02-10 then 2000 RUB from 03-05;
C3 trialing (not counted); C4 1000 RUB from 02-15 with a cancellation dated after the cutoff.
"""

from __future__ import annotations

from decimal import Decimal

from .raw_layer import RawWriter

AS_OF_DATE = "2026-03-15"


def load_tiny_company(writer: RawWriter) -> None:
    """Land the tiny company in the raw layer, in two load batches."""
    w = writer
    w.new_batch()
    w.file(
        "users",
        [
            {
                "user_id": "u1",
                "full_name": "Анна Петрова",
                "email": "anna@seller.ru",
                "is_active": "true",
                "updated_at": "2025-12-01T00:00:00Z",
            },
            {"user_id": "u2", "full_name": "Bob", "team": "east", "is_active": "0", "updated_at": "2025-12-01"},
        ],
    )
    w.file(
        "stages",
        [
            _stage("s_lead", "lead", "1", "0.1"),
            _stage("s_qual", "qualification", "2", "0,2"),
            _stage("s_prop", "proposal", "3", "0.5"),
            _stage("s_neg", "negotiation", "4", "0.7"),
            _stage("s_close", "closing", "5", "0.9"),
            _stage("s_lost", "lost", "6", "0"),
        ],
    )
    w.file(
        "accounts",
        [
            _account("A1", "Alfa old", "2026-01-01T00:00:00Z", tax_id="7701-234567", domain="alfa.ru"),
            _account("A1", "Альфа", "2026-01-02T00:00:00Z", tax_id="7701-234567", domain="alfa.ru"),
            _account("A2", "Beta", "2026-01-01T00:00:00Z", tax_id="500100", domain="www.beta.com"),
            _account("A2", "Beta NEW", "2026-03-20T00:00:00Z", tax_id="500100", domain="www.beta.com"),
            _account("A3", "Gamma old", "2026-01-01T00:00:00Z", domain="gamma.io"),
            _account("A4", "Delta", "2026-01-01T00:00:00Z", domain="delta.ru"),
            _account("A5", "Eps", "2026-01-01T00:00:00Z", domain="shared.com"),
            _account("A6", "Zeta", "2026-01-01T00:00:00Z", domain="SHARED.com"),
        ],
    )
    w.file(
        "contacts",
        [
            {
                "contact_id": "K1",
                "account_id": "A1",
                "full_name": "Иван",
                "email": "Ivan@Alfa.ru",
                "phone": "+7 (999) 123-45-67",
                "created_at": "2026-01-01",
                "updated_at": "2026-01-01",
            },
        ],
    )
    w.file(
        "deals",
        [
            _deal("D1", "A1", "s_close", "1000", "USD", "won", "2026-01-05T09:00:00Z", "2026-02-10T12:00:00Z"),
            _deal("D2", "A1", "s_close", "50000", "RUB", "won", "2026-01-10T09:00:00Z", "2026-03-01T10:00:00+03:00"),
            _deal("D3", "A2", "s_lost", "10000,00", "rub", "lost", "2026-01-15T09:00:00Z", "2026-02-20T12:00:00Z"),
            _deal("D4", "A3", "s_prop", "200", "USD", "open", "2026-02-03T09:00:00Z", None),
            _deal("D5", "A2", "s_lead", "700", "RUB", "open", "2026-02-05T09:00:00Z", None),
            _deal(
                "D7",
                "A2",
                "s_neg",
                "3000",
                "RUB",
                "open",
                "2026-02-01T09:00:00Z",
                None,
                updated_at="2026-02-15T00:00:00Z",
            ),
            _deal("D8", "A4", "s_close", "5000", "RUB", "won", "2026-01-20T09:00:00Z", "2026-01-25 23:30:00-02:00"),
        ],
    )
    w.file(
        "deal_stage_history",
        [
            {"deal_id": "D1", "stage_id": "s_lead", "entered_at": "2026-01-05T09:00:00Z"},
            {"deal_id": "D1", "stage_id": "s_prop", "entered_at": "2026-01-20T09:00:00Z"},
            {"deal_id": "D3", "stage_id": "s_lead", "entered_at": "2026-01-15T09:00:00Z"},
            {"deal_id": "D3", "stage_id": "s_qual", "entered_at": "2026-01-20T09:00:00Z"},
            {"deal_id": "D3", "stage_id": "s_neg", "entered_at": "2026-02-01T09:00:00Z"},
            {"deal_id": "D3", "stage_id": "s_lost", "entered_at": "2026-02-20T12:00:00Z"},
            {"deal_id": "D4", "stage_id": "s_lead", "entered_at": "2026-02-03T09:00:00Z"},
            {"deal_id": "D4", "stage_id": "s_prop", "entered_at": "2026-02-10T09:00:00Z"},
            {"deal_id": "D7", "stage_id": "s_lead", "entered_at": "2026-02-01T09:00:00Z"},
            {"deal_id": "D7", "stage_id": "s_neg", "entered_at": "2026-02-15T00:00:00Z"},
            {"deal_id": "D7", "stage_id": "s_close", "entered_at": "2026-03-20T00:00:00Z"},  # after the cutoff
        ],
    )
    w.file(
        "deal_contacts",
        [{"deal_id": "D1", "contact_id": "K1", "role": "decision_maker", "updated_at": "2026-01-06"}],
    )
    w.file(
        "activities",
        [
            {
                "activity_id": "X1",
                "deal_id": "D1",
                "account_id": "A1",
                "contact_id": "K1",
                "owner_id": "u1",
                "channel": "email",
                "occurred_at": "2026-01-02T10:00:00Z",
                "updated_at": "2026-01-02T10:00:00Z",
            },
            {
                "activity_id": "X2",
                "deal_id": "D2",
                "channel": "call",
                "occurred_at": "2026-01-01T10:00:00Z",
                "updated_at": "2026-01-01T10:00:00Z",
                "is_deleted": "false",
            },
            {
                "activity_id": "X2",
                "deal_id": "D2",
                "channel": "call",
                "occurred_at": "2026-01-01T10:00:00Z",
                "updated_at": "2026-01-03T10:00:00Z",
                "is_deleted": "true",
            },
        ],
    )
    w.file(
        "customers",
        [
            _customer("C1", "Alfa billing", crm_account_id="A1"),
            _customer("C2", "Beta LLC", crm_account_id="A999", tax_id="500-100"),
            _customer("C3", "Gamma billing", email_domain="WWW.Gamma.io"),
            _customer("C4", "Shared Co", email_domain="shared.com"),
            _customer("C5", "Delta billing", crm_account_id="A4"),
            _customer("C6", "Alfa second", tax_id="7701234567"),
        ],
    )
    w.file(
        "subscriptions",
        [
            _subscription("S1", "C1", "active", "100", "USD", "2026-01-10T00:00:00Z"),
            _subscription("S2", "C2", "canceled", "5000", "RUB", "2026-01-20T00:00:00Z", "2026-02-10T00:00:00Z"),
            _subscription("S3", "C3", "trialing", "300", "RUB", "2026-02-01T00:00:00Z"),
            _subscription(
                "S4",
                "C4",
                "active",
                "1000",
                "RUB",
                "2026-02-15T00:00:00Z",
                "2026-03-31T00:00:00Z",
                updated_at="2026-03-01T00:00:00Z",
            ),
            _subscription("S5", "C2", "active", "2000", "RUB", "2026-03-05T00:00:00Z"),
        ],
    )
    w.file(
        "invoices",
        [
            _invoice("I1", "C1", "paid", "1000", "USD", "2026-02-01T00:00:00Z", "2026-02-15T00:00:00Z"),
            _invoice("I2", "C6", "paid", "20000", "RUB", "2026-03-01T00:00:00Z", "2026-03-05T00:00:00Z"),
            _invoice("I3", "C2", "paid", "5000", "RUB", "2026-01-20T00:00:00Z", "2026-01-31T22:00:00"),
            _invoice(
                "I4",
                "C4",
                "paid",
                "1000",
                "RUB",
                "2026-03-01T00:00:00Z",
                "2026-03-20T00:00:00Z",
                updated_at="2026-03-10T00:00:00Z",
            ),
            _invoice("I5", "C3", "open", "300", "RUB", "2026-03-01T00:00:00Z", None),
        ],
    )
    w.file(
        "fx_rates",
        [
            {"rate_date": "2026-01-01", "currency": "USD", "rate": "90"},
            {"rate_date": "2026-02-01", "currency": "USD", "rate": "100"},
        ],
    )

    # The second night: a dated folder of changes.
    w.new_batch()
    w.file("fx_rates", [{"rate_date": "2026-02-01", "currency": "USD", "rate": "95,0"}], folder_date="2026-02-02")
    w.file(
        "accounts",
        [
            _account("A3", "Gamma", "2026-01-01T00:00:00Z", domain="gamma.io"),  # same updated_at, later file
            _account("A4", "Delta", "2026-02-01T00:00:00Z", domain="delta.ru", is_deleted="1"),
        ],
        folder_date="2026-02-02",
    )
    w.file(
        "deals",
        [
            _deal(
                "D5",
                "A2",
                "s_lead",
                "700",
                "RUB",
                "open",
                "2026-02-05T09:00:00Z",
                None,
                updated_at="2026-02-20T00:00:00Z",
                is_deleted="true",
            ),
            _deal(
                "D7",
                "A2",
                "s_close",
                "3000",
                "RUB",
                "won",
                "2026-02-01T09:00:00Z",
                "2026-03-20T00:00:00Z",
                updated_at="2026-03-20T00:00:00Z",
            ),
        ],
        folder_date="2026-02-02",
    )
    w.file(
        "deal_stage_history",
        [{"deal_id": "D1", "stage_id": "s_lead", "entered_at": "2026-01-05T12:00:00+03:00"}],  # a duplicate
        folder_date="2026-02-02",
    )


def _stage(stage_id: str, canonical: str, order: str, probability: str) -> dict[str, str]:
    return {
        "stage_id": stage_id,
        "pipeline_id": "p1",
        "stage_name": stage_id,
        "display_order": order,
        "probability": probability,
        "canonical_stage": canonical,
        "updated_at": "2025-12-01T00:00:00Z",
    }


def _account(account_id: str, name: str, updated_at: str, **extra: str) -> dict[str, str]:
    return {
        "account_id": account_id,
        "name": name,
        "owner_id": "u1",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": updated_at,
        **extra,
    }


def _deal(
    deal_id: str,
    account_id: str,
    stage_id: str,
    amount: str,
    currency: str,
    status: str,
    created_at: str,
    closed_at: str | None,
    **extra: str,
) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "deal_id": deal_id,
        "account_id": account_id,
        "owner_id": "u1",
        "pipeline_id": "p1",
        "stage_id": stage_id,
        "amount": amount,
        "currency": currency,
        "status": status,
        "created_at": created_at,
        "closed_at": closed_at,
        "updated_at": closed_at or created_at,
    }
    row.update(extra)
    return row


def _customer(customer_id: str, name: str, **extra: str) -> dict[str, str]:
    return {
        "customer_id": customer_id,
        "name": name,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        **extra,
    }


def _subscription(
    subscription_id: str,
    customer_id: str,
    status: str,
    mrr: str,
    currency: str,
    started_at: str,
    canceled_at: str | None = None,
    **extra: str,
) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "subscription_id": subscription_id,
        "customer_id": customer_id,
        "plan": "pro",
        "status": status,
        "mrr_amount": mrr,
        "currency": currency,
        "started_at": started_at,
        "canceled_at": canceled_at,
        "updated_at": canceled_at or started_at,
    }
    row.update(extra)
    return row


def _invoice(
    invoice_id: str,
    customer_id: str,
    status: str,
    amount: str,
    currency: str,
    issued_at: str,
    paid_at: str | None,
    **extra: str,
) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "invoice_id": invoice_id,
        "customer_id": customer_id,
        "status": status,
        "currency": currency,
        "amount_total": amount,
        "amount_paid": amount if status == "paid" else "0",
        "issued_at": issued_at,
        "paid_at": paid_at,
        "updated_at": paid_at or issued_at,
    }
    row.update(extra)
    return row


D = Decimal

# Hand-computed expectations (see the module docstring).
EXPECTED_FUNNEL = {
    # (cohort_month, stage_key): (deals_reached, deals_reached_next, conversion_to_next)
    ("2026-01-01", "lead"): (4, 4, D(1)),
    ("2026-01-01", "negotiation"): (4, 3, D("0.75")),
    ("2026-01-01", "closing"): (3, 2, D(2) / D(3)),
    ("2026-01-01", "post_sale"): (2, None, None),
    ("2026-02-01", "proposal"): (2, 1, D("0.5")),
    ("2026-02-01", "negotiation"): (1, 0, D(0)),
    ("2026-02-01", "closing"): (0, 0, None),
    ("2026-03-01", "lead"): (0, 0, None),
}
EXPECTED_SALES_PERFORMANCE = {
    # month: (deals_won, deals_lost, win_rate, won_amount, avg_deal_size, avg_cycle_days, median_cycle_days)
    "2026-01-01": (1, 0, D(1), D(5000), D(5000), D(6), D(6)),
    "2026-02-01": (1, 1, D("0.5"), D(95000), D(95000), D(39), D(39)),
    "2026-03-01": (1, 0, D(1), D(50000), D(50000), D(50), D(50)),
}
EXPECTED_REVENUE = {
    # month: (revenue, revenue_new_customers, new_customer_revenue_share, paying_customers)
    "2026-01-01": (D(5000), D(5000), D(1), 1),
    "2026-02-01": (D(95000), D(95000), D(1), 1),
    "2026-03-01": (D(20000), D(0), D(0), 1),
}
EXPECTED_RETENTION = {
    # month: (customers_start, customers_end, customers_new, customers_churned, retention_rate, churn_rate)
    "2026-01-01": (0, 2, 2, 0, None, None),
    "2026-02-01": (2, 2, 1, 1, D("0.5"), D("0.5")),
    "2026-03-01": (2, 3, 1, 0, D(1), D(0)),
}
EXPECTED_REPEAT_PURCHASE = {
    # month: (customers_with_purchase, customers_with_repeat_purchase, repeat_purchase_rate)
    "2026-01-01": (0, 0, None),
    "2026-02-01": (1, 0, D(0)),
    "2026-03-01": (1, 1, D(1)),
}
EXPECTED_CUSTOMER_VALUE = {
    # account_name: (weighted_open_pipeline, active_mrr, potential_contract_value)
    "Альфа": (D(0), D(9500), D(114000)),
    "Beta": (D(2100), D(2000), D(26100)),
    "Shared Co": (D(0), D(1000), D(12000)),
}
EXPECTED_MATCH_METHODS = {
    # account_name: (crm_account_id, billing_customer_ids, match_method)
    "Альфа": ("A1", ["C1", "C6"], "crm_account_id"),
    "Beta": ("A2", ["C2"], "tax_id"),
    "Gamma": ("A3", ["C3"], "domain"),
    "Eps": ("A5", [], None),
    "Zeta": ("A6", [], None),
    "Shared Co": (None, ["C4"], "unmatched"),
    "Delta billing": (None, ["C5"], "unmatched"),
}
