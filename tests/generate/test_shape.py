"""The demo seller behaves like a real B2B seller: the ranges documented in docs/generator.md.

Measured on the latest state of a 1,000-account drop over the default period
(2024-01-01 to 2026-11-25), read back from its files.
"""

from __future__ import annotations

from b2b_pipeline.filedrop.spec import CANONICAL_STAGE_KEYS


def test_sizes(shape_drop):
    s = shape_drop.shape
    assert 4.0 <= s.deals_per_account <= 6.0
    assert 80 <= s.rows_per_account <= 120
    assert 20 <= s.users <= 60
    assert s.inactive_users >= 1
    assert s.teams >= 3


def test_deal_outcomes(shape_drop):
    s = shape_drop.shape
    assert s.history_ok, "stage history disagrees with a deal's status, stage or creation"
    assert 0.20 <= s.win_rate <= 0.35
    assert 0.05 <= s.open_share <= 0.15
    assert 0.30 <= s.expansion_share <= 0.50
    assert s.post_sale_share_of_won >= 0.80


def test_stage_skips_regressions_and_losses_at_every_stage(shape_drop):
    s = shape_drop.shape
    assert 0.10 <= s.skip_share <= 0.30
    assert 0.04 <= s.regression_share <= 0.15
    assert set(s.loss_share_by_stage) == set(CANONICAL_STAGE_KEYS[:5])
    for stage, share in s.loss_share_by_stage.items():
        assert share >= 0.05, f"too few deals lost at {stage}: {share:.1%}"


def test_cycle_length_and_first_touch(shape_drop):
    s = shape_drop.shape
    assert 50 <= s.median_cycle_days <= 100
    assert 0.20 <= s.first_touch_before_share <= 0.45


def test_contacts_on_deals(shape_drop):
    s = shape_drop.shape
    assert 2.0 <= s.contacts_per_deal <= 3.0
    assert s.decision_maker_share >= 0.80


def test_names_and_currencies(shape_drop):
    s = shape_drop.shape
    assert 0.70 <= s.cyrillic_name_share <= 0.90
    assert 0.003 <= s.deleted_account_share <= 0.03
    assert set(s.currency_share) == {"RUB", "USD", "EUR"}
    assert 0.65 <= s.currency_share["RUB"] <= 0.85
    assert 0.08 <= s.currency_share["USD"] <= 0.20
    assert 0.05 <= s.currency_share["EUR"] <= 0.15


def test_billing_customers_match_by_every_rule(shape_drop):
    s = shape_drop.shape
    assert 0.60 <= s.match_share["crm_account_id"] <= 0.85
    assert 0.05 <= s.match_share["tax_id"] <= 0.15
    assert 0.05 <= s.match_share["domain"] <= 0.15
    assert 0.02 <= s.match_share["unmatched"] <= 0.08
    assert s.accounts_with_two_customers >= 5


def test_churn_per_month(shape_drop):
    s = shape_drop.shape
    assert len(s.monthly_churn) >= 24
    assert 0.015 <= s.mean_monthly_churn <= 0.04
    assert s.max_monthly_churn_100 <= 0.08


def test_subscription_and_invoice_statuses(shape_drop):
    s = shape_drop.shape
    assert set(s.subscription_status) == {"trialing", "active", "past_due", "canceled"}
    assert set(s.invoice_status) == {"draft", "open", "paid", "void", "uncollectible"}
    assert s.paid_share >= 0.85
    assert 0.08 <= s.late_share <= 0.25
    assert s.deal_invoices > 0


def test_payments_just_after_midnight_in_moscow(shape_drop):
    s = shape_drop.shape
    assert 0.03 <= s.msk_midnight_share <= 0.15
    # written 00:xx+03:00, they fall on the previous day in UTC
    assert s.msk_midnight_previous_utc_day > 0
    assert {"z", "naive", "msk"} <= set(s.timestamp_styles)


def test_exchange_rates(shape_drop):
    s = shape_drop.shape
    assert s.fx_currencies == {"USD", "EUR"}
    assert s.fx_missing_weekdays == 0
    assert 0.3 <= s.fx_missing_weekend_days / s.fx_weekend_days <= 0.8
    assert s.fx_range["USD"][0] >= 70
    assert s.fx_range["USD"][1] <= 115
    assert s.fx_range["EUR"][0] >= 80
    assert s.fx_range["EUR"][1] <= 125
