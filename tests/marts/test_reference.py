"""The reference marts against hand arithmetic (cases/*/expected.yaml), and the comparison helper itself."""

from __future__ import annotations

import copy
import gzip
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .compare import (
    MART_COLUMNS,
    MART_NAMES,
    account_key_map_from_dim_accounts,
    assert_marts_equal,
    frame_from_rows,
)
from .reference import (
    SETTINGS,
    MissingFxRateError,
    UnknownStageError,
    compute_accounts,
    compute_marts,
    read_drop,
)
from .synthetic import write_synthetic_drop

CASES_DIR = Path(__file__).parent / "cases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "expected.yaml").is_file())


def load_expected(case: str) -> dict:
    return yaml.safe_load((CASES_DIR / case / "expected.yaml").read_text(encoding="utf-8"))


def run_settings(run: dict) -> dict:
    """A run's reporting settings (`settings:` in expected.yaml; a missing key is its default), as the
    keyword arguments of compute_marts and the dbt vars that override night_vars()."""
    settings = dict(run.get("settings") or {})
    unknown = set(settings) - set(SETTINGS)
    assert not unknown, f"unknown setting(s) {sorted(unknown)} in the run of {run['as_of']}"
    return settings


def run_id(case: str, run: dict) -> str:
    """`<case>-<as_of>` and the run's settings, e.g. `settings-2026-02-28-Europe/Moscow-EUR-sales`."""
    settings = run_settings(run)
    parts = [case, str(run["as_of"])]
    if "reporting_timezone" in settings:
        parts.append(settings["reporting_timezone"])
    if "reporting_currency" in settings:
        parts.append(settings["reporting_currency"])
    if "fx_base_currency" in settings:
        parts.append(f"base:{settings['fx_base_currency']}")
    if "sales_pipelines" in settings:
        parts.append("+".join(settings["sales_pipelines"]) or "all-pipelines")
    return "-".join(parts)


def case_runs() -> list:
    params = []
    for case in CASES:
        for run in load_expected(case)["runs"]:
            params.append(pytest.param(case, run, id=run_id(case, run)))
    ids = [p.id for p in params]
    assert len(ids) == len(set(ids)), f"duplicate run ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    return params


def expected_frames(run: dict) -> dict[str, pd.DataFrame]:
    return {mart: frame_from_rows(mart, rows or []) for mart, rows in run["marts"].items()}


def extra_columns_of(run: dict) -> dict[str, list[str]]:
    extra: dict[str, list[str]] = {}
    for mart, rows in run["marts"].items():
        names = [c for row in rows or [] for c in row if c not in MART_COLUMNS[mart]]
        if names:
            extra[mart] = list(dict.fromkeys(names))
    return extra


# ------------------------------------------------------------------------------------------------
# hand cases
# ------------------------------------------------------------------------------------------------


def test_cases_exist_and_cover_every_mart() -> None:
    assert len(CASES) >= 3
    covered = set()
    for case in CASES:
        for run in load_expected(case)["runs"]:
            assert set(run["marts"]) <= set(MART_NAMES), (case, run["as_of"])
            covered |= {mart for mart, rows in run["marts"].items() if rows}
    assert covered == set(MART_NAMES)


@pytest.mark.parametrize(("case", "run"), case_runs())
def test_reference_matches_hand_computed_marts(case: str, run: dict) -> None:
    as_of = run["as_of"]
    assert isinstance(as_of, date)
    actual = compute_marts(CASES_DIR / case, as_of, **run_settings(run))
    assert_marts_equal(actual, expected_frames(run), extra_columns=extra_columns_of(run))


@pytest.mark.parametrize(("case", "run"), [p for p in case_runs() if "accounts" in p.values[1]])
def test_reference_unifies_accounts_as_by_hand(case: str, run: dict) -> None:
    timezone = run_settings(run).get("reporting_timezone", "UTC")
    accounts = compute_accounts(CASES_DIR / case, run["as_of"], reporting_timezone=timezone)
    got = {r["customer_id"]: (r["account_key"], r["match_method"]) for r in accounts.to_dict("records")}
    want = {r["customer_id"]: (r["account_key"], r["match_method"]) for r in run["accounts"]}
    assert got == want


@pytest.mark.parametrize("case", CASES)
def test_reference_output_shape(case: str) -> None:
    run = load_expected(case)["runs"][0]
    marts = compute_marts(CASES_DIR / case, run["as_of"], **run_settings(run))
    assert list(marts) == list(MART_NAMES)
    for mart, frame in marts.items():
        assert list(frame.columns[: len(MART_COLUMNS[mart])]) == list(MART_COLUMNS[mart]), mart
        if mart != "customer_value" and len(frame):
            # one row per month (per stage for the funnel) from the first month through the as-of month
            month_col = "cohort_month" if mart == "sales_funnel" else "month"
            months = sorted(set(frame[month_col]))
            assert months[-1] == run["as_of"].replace(day=1)
            assert len(frame) == len(months) * (7 if mart == "sales_funnel" else 1)
            expected_months = pd.date_range(months[0], months[-1], freq="MS").date.tolist()
            assert months == expected_months, mart


def test_a_wrong_expectation_fails() -> None:
    """Each hand case would catch a one-off error in any mart it checks."""
    for case in CASES:
        for run in load_expected(case)["runs"]:
            actual = compute_marts(CASES_DIR / case, run["as_of"], **run_settings(run))
            for mart, rows in run["marts"].items():
                if not rows:
                    continue
                wrong = copy.deepcopy(run)
                row = wrong["marts"][mart][-1]
                column = next(c for c, kind in MART_COLUMNS[mart].items() if kind in ("count", "money"))
                row[column] = (row[column] or 0) + 1
                with pytest.raises(AssertionError, match=column):
                    assert_marts_equal(actual, {mart: frame_from_rows(mart, wrong["marts"][mart])})
                dropped = {mart: frame_from_rows(mart, rows[:-1])}
                with pytest.raises(AssertionError, match="unexpected in actual"):
                    assert_marts_equal(actual, dropped)


# ------------------------------------------------------------------------------------------------
# reading rules and failures, on tiny drops
# ------------------------------------------------------------------------------------------------


def write(path: Path, text: str, *, bom: bool = False, gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)


INVOICE_HEADER = "invoice_id,customer_id,status,currency,amount_total,amount_paid,issued_at,paid_at,updated_at\n"


def test_decimal_comma_only_in_semicolon_files(tmp_path: Path) -> None:
    write(
        tmp_path / "billing/invoices.csv",
        INVOICE_HEADER.replace(",", ";")
        + "I1;C1;paid;RUB;10,5;10,5;2026-01-01;2026-01-02T00:00:00;2026-01-02T00:00:00\n",
        bom=True,
    )
    write(
        tmp_path / "billing/2026-01-05/invoices.jsonl.gz",
        json.dumps(
            {
                "invoice_id": "I2",
                "customer_id": "C1",
                "status": "paid",
                "currency": "RUB",
                "amount_total": "3,5",  # a decimal comma outside a `;` file: quarantined
                "amount_paid": 3.5,
                "issued_at": "2026-01-01",
                "paid_at": "2026-01-02T00:00:00Z",
                "updated_at": "2026-01-02T00:00:00Z",
            }
        )
        + "\n",
        gz=True,
    )
    write(
        tmp_path / "billing/2026-01-05/invoices.csv",
        INVOICE_HEADER + 'I3,C1,paid,RUB,"4,5",1,2026-01-01,2026-01-02T00:00Z,2026-01-02T00:00Z\n'
        "I4,C1,paid,RUB,4.5,1.25,2026-01-01,2026-01-02T00:00Z,2026-01-02T00:00Z\n",
    )
    drop = read_drop(tmp_path)
    rows = {r["invoice_id"]: r for r in drop.entity_rows("invoices")}
    assert sorted(rows) == ["I1", "I4"]
    assert rows["I1"]["amount_paid"] == 10.5
    assert rows["I4"]["amount_paid"] == 1.25
    assert drop.rejected_rows == 2
    revenue = compute_marts(drop, date(2026, 1, 31))["revenue_monthly"]
    assert revenue["revenue"].tolist() == [11.75]


def test_missing_fx_rate_and_unknown_stage_raise(tmp_path: Path) -> None:
    write(tmp_path / "billing/invoices.csv", INVOICE_HEADER + "I1,C1,paid,USD,1,1,2026-01-01,2026-01-02,2026-01-02\n")
    write(tmp_path / "billing/fx_rates.csv", "rate_date,currency,rate\n2026-01-03,USD,90\n")
    with pytest.raises(MissingFxRateError, match="USD"):
        compute_marts(tmp_path, date(2026, 1, 31))
    write(tmp_path / "billing/fx_rates.csv", "rate_date,currency,rate\n2025-12-31,USD,90\n")
    assert compute_marts(tmp_path, date(2026, 1, 31))["revenue_monthly"]["revenue"].tolist() == [90.0]

    write(
        tmp_path / "crm/deals.csv",
        "deal_id,account_id,stage_id,amount,currency,status,created_at,updated_at\n"
        "D1,A1,s_nowhere,1,RUB,open,2026-01-01,2026-01-01\n",
    )
    write(tmp_path / "crm/deal_stage_history.csv", "deal_id,stage_id,entered_at\nD1,s_nowhere,2026-01-01\n")
    with pytest.raises(UnknownStageError, match="s_nowhere"):
        compute_marts(tmp_path, date(2026, 1, 31))


def test_fx_through_another_base_currency(tmp_path: Path) -> None:
    """Rates quoted in USD (base), marts in EUR: amount x rate(currency) / rate(EUR); USD itself is 1."""
    write(
        tmp_path / "billing/invoices.csv",
        INVOICE_HEADER + "I1,C1,paid,RUB,1,900,2026-01-01,2026-01-05T12:00Z,2026-01-05T12:00Z\n"
        "I2,C1,paid,USD,1,10,2026-01-01,2026-01-06T12:00Z,2026-01-06T12:00Z\n"
        "I3,C1,paid,EUR,1,7,2026-01-06,2026-01-06T12:00Z,2026-01-06T12:00Z\n",
    )
    write(
        tmp_path / "billing/fx_rates.csv",
        "rate_date,currency,rate\n2026-01-01,RUB,0.01\n2026-01-01,EUR,1.25\n2026-01-01,USD,3\n2026-01-06,EUR,1.2\n",
    )
    revenue = compute_marts(tmp_path, date(2026, 1, 31), "EUR", fx_base_currency="USD")["revenue_monthly"]
    # 900 x 0.01 / 1.25 (EUR of 01-01 on 01-05) + 10 x 1 / 1.2 (USD is the base: its row is ignored) + 7
    assert revenue["revenue"].tolist() == [pytest.approx(900 * 0.01 / 1.25 + 10 / 1.2 + 7)]
    # the default settings on the same drop: RUB is the base, so every rate is read as RUB per unit
    revenue = compute_marts(tmp_path, date(2026, 1, 31))["revenue_monthly"]
    assert revenue["revenue"].tolist() == [pytest.approx(900 + 10 * 3 + 7 * 1.2)]
    # a reporting currency without a rate on or before the day: the amount has no conversion
    with pytest.raises(MissingFxRateError, match="GBP"):
        compute_marts(tmp_path, date(2026, 1, 31), "GBP", fx_base_currency="USD")


def test_timezone_cutoff_and_pipeline_of_a_deal_without_one(tmp_path: Path) -> None:
    write(
        tmp_path / "crm/stages.csv",
        "stage_id,pipeline_id,stage_name,display_order,probability,canonical_stage,updated_at\n"
        "s1,sales,Won,1,1,closing,2025-01-01T00:00:00Z\np1,partners,Won,1,1,closing,2025-01-01T00:00:00Z\n",
    )
    write(
        tmp_path / "crm/deals.csv",
        "deal_id,account_id,pipeline_id,stage_id,amount,currency,status,created_at,closed_at,updated_at\n"
        "D1,A1,,s1,10,RUB,won,2026-01-02T00:00Z,2026-01-31T20:59:59Z,2026-01-31T20:59:59Z\n"
        "D2,A1,,p1,20,RUB,won,2026-01-02T00:00Z,2026-01-31T21:00:00Z,2026-01-31T21:00:00Z\n",
    )
    as_of = date(2026, 1, 31)
    won = compute_marts(tmp_path, as_of)["sales_performance_monthly"]["won_amount"].tolist()
    assert won == [30.0]  # UTC: both closes are before 2026-02-01T00:00Z
    won = compute_marts(tmp_path, as_of, reporting_timezone="Europe/Moscow")["sales_performance_monthly"]
    assert won["won_amount"].tolist() == [10.0]  # Moscow: cutoff 2026-01-31T21:00Z; D2 (updated at it) not yet
    for pipelines, amount in ((["sales"], 10.0), (["partners"], 20.0), ([], 30.0), (["sales", "partners"], 30.0)):
        perf = compute_marts(tmp_path, as_of, sales_pipelines=pipelines)["sales_performance_monthly"]
        assert perf["won_amount"].tolist() == [amount], pipelines


def test_empty_drop_gives_empty_marts(tmp_path: Path) -> None:
    marts = compute_marts(tmp_path, date(2026, 1, 31))
    assert all(frame.empty for frame in marts.values())
    assert list(marts["customer_value"].columns[:6]) == list(MART_COLUMNS["customer_value"])


# ------------------------------------------------------------------------------------------------
# the comparison helper
# ------------------------------------------------------------------------------------------------


def revenue(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(MART_COLUMNS["revenue_monthly"]))


BASE = revenue((date(2026, 1, 1), 100.0, 50.0, 0.5, 2), (date(2026, 2, 1), 0.0, 0.0, None, 0))


def test_compare_accepts_equal_marts_in_other_types_and_order() -> None:
    other = pd.DataFrame(
        {
            "month": [datetime(2026, 2, 1), pd.Timestamp("2026-01-01")],
            "revenue": [Decimal("0"), Decimal("100.00004")],
            "revenue_new_customers": [Decimal("0"), Decimal("50")],
            "new_customer_revenue_share": [None, Decimal("0.5")],
            "paying_customers": [Decimal("0"), 2],
            "an_added_column": ["ignored", "ignored"],
        }
    )
    assert_marts_equal({"revenue_monthly": other}, {"revenue_monthly": BASE})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(paying_customers=[3, 0]), "paying_customers: actual 3 != expected 2"),
        (lambda f: f.assign(revenue=[100.001, 0.0]), "revenue: actual 100.001"),
        (lambda f: f.assign(new_customer_revenue_share=[0.5, 0.0]), "actual 0.0 != expected NULL"),
        (lambda f: f.assign(new_customer_revenue_share=[None, None]), "actual NULL != expected 0.5"),
        (lambda f: f.iloc[:1], "1 row(s) missing from actual"),
        (lambda f: pd.concat([f, revenue((date(2026, 3, 1), 0.0, 0.0, None, 0))]), "unexpected in actual"),
        (lambda f: pd.concat([f, f.iloc[:1]]), "more than once"),
        (lambda f: f.drop(columns=["paying_customers"]), "lacks column(s) paying_customers"),
        (lambda f: f.assign(paying_customers=[2.5, 0]), "non-integer count"),
    ],
)
def test_compare_reports_differences(change, message: str) -> None:
    with pytest.raises(AssertionError) as failure:
        assert_marts_equal({"revenue_monthly": change(BASE)}, {"revenue_monthly": BASE})
    assert message in str(failure.value)


def test_compare_reports_a_missing_mart() -> None:
    with pytest.raises(AssertionError, match="revenue_monthly: missing from actual"):
        assert_marts_equal({}, {"revenue_monthly": BASE})


def test_compare_maps_account_keys() -> None:
    expected = frame_from_rows(
        "customer_value",
        [
            {
                "account_key": "A1",
                "account_name": "x",
                "weighted_open_pipeline": 1.0,
                "active_mrr": 0.0,
                "potential_contract_value": 1.0,
                "as_of_date": date(2026, 1, 31),
            },
            {
                "account_key": "C9",
                "account_name": "y",
                "weighted_open_pipeline": 0.0,
                "active_mrr": 1.0,
                "potential_contract_value": 12.0,
                "as_of_date": date(2026, 1, 31),
            },
        ],
    )
    actual = expected.assign(account_key=["k1", "k2"])
    with pytest.raises(AssertionError):
        assert_marts_equal({"customer_value": actual}, {"customer_value": expected})
    dim = pd.DataFrame(
        {"account_key": ["k1", "k2"], "crm_account_id": ["A1", None], "billing_customer_ids": [["C1"], ["C9"]]}
    )
    mapping = account_key_map_from_dim_accounts(dim)
    assert mapping == {"k1": "A1", "k2": "C9"}
    assert_marts_equal({"customer_value": actual}, {"customer_value": expected}, account_key_map=mapping)


# ------------------------------------------------------------------------------------------------
# size: ~2,000 accounts / ~200k rows, and the marts' internal identities
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_reference_on_a_large_synthetic_drop(tmp_path: Path) -> None:
    rows = write_synthetic_drop(tmp_path, accounts=2000, seed=7)
    assert rows >= 150_000
    as_of = date(2026, 6, 30)
    marts = compute_marts(tmp_path, as_of)  # its speed is not asserted: benchmarks measure, tests do not time

    funnel = marts["sales_funnel"]
    for _, cohort in funnel.groupby("cohort_month"):
        reached = cohort.sort_values("stage_order")["deals_reached"].tolist()
        assert reached == sorted(reached, reverse=True)
        nxt = cohort.sort_values("stage_order")["deals_reached_next"].tolist()
        assert nxt[:-1] == reached[1:] and pd.isna(nxt[-1])
    assert funnel["deals_reached"].sum() > 0

    retention = marts["retention_monthly"].reset_index(drop=True)
    assert (
        retention["customers_end"]
        == retention["customers_start"] - retention["customers_churned"] + retention["customers_new"]
    ).all()
    assert (retention["customers_start"].iloc[1:].values == retention["customers_end"].iloc[:-1].values).all()

    rev = marts["revenue_monthly"]
    assert (rev["revenue_new_customers"] <= rev["revenue"] + 1e-6).all()
    assert rev["revenue"].sum() > 0

    repeat = marts["repeat_purchase_monthly"]
    assert repeat["customers_with_purchase"].is_monotonic_increasing
    assert repeat["customers_with_repeat_purchase"].is_monotonic_increasing

    perf = marts["sales_performance_monthly"]
    assert perf["deals_won"].sum() > 0

    value = marts["customer_value"]
    assert len(value) > 500
    assert value["account_key"].is_unique
    diff = value["potential_contract_value"] - value["weighted_open_pipeline"] - 12 * value["active_mrr"]
    assert (diff.abs() < 1e-6).all()

    # a reference compared with itself is equal
    assert_marts_equal(marts, marts)
