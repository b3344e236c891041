"""Pipelines that count as sales (the setting `sales_pipelines`, dbt var of the same name).

A tiny hand-made file drop with two CRM pipelines, `sales` and `partners`, is built twice in one
warehouse: with the default (every pipeline counts) and with `sales_pipelines: ["sales"]`. The deals
of `partners` must stay in core (with their pipeline, `is_sales_pipeline` false) and leave every
sales mart; the numbers below are worked out by hand from docs/metrics.md.

The drop (as of 2026-02-28, cutoff 2026-03-01T00:00Z; every entry at 09:00Z, so stays are whole days;
no invoices, so no deal reaches post_sale):

    deal pipeline_id  stage   acct owner created status closed  amount  history: stage entered
    S1   sales        s_won   A1   U1    02-02   won    02-12   100000  lead 02-02, qual 02-04, prop 02-06,
                                                                        won 02-12
    S2   sales        s_lost  A2   U1    02-03   lost   02-10    50000  lead 02-03, qual 02-05, lost 02-10
    S3   sales        s_prop  A1   U1    02-05   open            40000  lead 02-05, prop 02-08
    S4   (none)       s_won   A2   U1    02-06   won    02-26    60000  lead 02-06, won 02-26
    P1   partners     p_won   A3   U2    01-20   won    02-20   300000  lead 01-20, prop 02-01, won 02-20
    P2   partners     p_lost  A3   U2    02-07   lost   02-09    10000  lead 02-07, lost 02-09
    P3   (none)       p_prop  A1   U2    02-10   open            80000  lead 02-10, prop 02-15
    P4   partners     p_won   A1   U2    02-15   won    02-22    20000  lead 02-15, won 02-22

S4 and P3 name no pipeline: theirs is their current stage's (sales and partners).
Stages: sales s_lead (lead, p 0.1), s_qual (qualification, 0.2), s_prop (proposal, 0.5), s_won
(closing, 1), s_lost (lost, 0); partners p_lead (lead, 0.2), p_prop (proposal, 0.5), p_won (closing,
1), p_lost (lost, 0).
Activities: S1 call 02-01 (before its creation: first touch 02-01), S4 email 02-10, P1 meeting
02-01, P4 email 02-16: all before their deal's close.
Deal contacts: S1 K1 decision maker; S4 K2 user; P1 K3 and K4 decision makers; P4 K1 user.

Highest stage reached (history, or 6 when won): S1 6, S2 2, S3 4, S4 6, P1 6, P2 1, P3 4, P4 6.
Cycle (close date - first touch date) of the won deals: S1 02-12 - 02-01 = 11, S4 02-26 - 02-06 = 20,
P1 02-20 - 01-20 = 31, P4 02-22 - 02-15 = 7.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.transform import night_vars, run_dbt

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AS_OF = dt.date(2026, 2, 28)
JAN, FEB = dt.date(2026, 1, 1), dt.date(2026, 2, 1)
PRECISION = Decimal("0.000001")

DROP: dict[str, str] = {
    "crm/users.csv": """\
user_id,full_name,email,team,is_active,updated_at
U1,Anna Sales,anna@seller.ru,direct,true,2025-12-01T00:00:00Z
U2,Boris Partners,boris@seller.ru,partners,true,2025-12-01T00:00:00Z
""",
    "crm/accounts.csv": """\
account_id,name,tax_id,domain,industry,country,employee_count,owner_id,created_at,updated_at,is_deleted
A1,Alfa,,alfa.ru,retail,RU,50,U1,2025-12-01T00:00:00Z,2025-12-01T00:00:00Z,false
A2,Beta,,beta.ru,retail,RU,80,U1,2025-12-01T00:00:00Z,2025-12-01T00:00:00Z,false
A3,Gamma,,gamma.ru,retail,RU,20,U2,2025-12-01T00:00:00Z,2025-12-01T00:00:00Z,false
""",
    "crm/contacts.csv": """\
contact_id,account_id,full_name,email,phone,job_title,created_at,updated_at,is_deleted
K1,A1,Kira,,,CEO,2025-12-01T00:00:00Z,2025-12-01T00:00:00Z,false
K2,A2,Kostya,,,CTO,2025-12-01T00:00:00Z,2025-12-01T00:00:00Z,false
K3,A3,Klara,,,CEO,2025-12-01T00:00:00Z,2025-12-01T00:00:00Z,false
K4,A3,Kirill,,,CFO,2025-12-01T00:00:00Z,2025-12-01T00:00:00Z,false
""",
    "crm/stages.csv": """\
stage_id,pipeline_id,stage_name,display_order,probability,canonical_stage,updated_at
s_lead,sales,Lead,1,0.1,lead,2025-01-01T00:00:00Z
s_qual,sales,Qualified,2,0.2,qualification,2025-01-01T00:00:00Z
s_prop,sales,Proposal,3,0.5,proposal,2025-01-01T00:00:00Z
s_won,sales,Won,4,1,closing,2025-01-01T00:00:00Z
s_lost,sales,Lost,5,0,lost,2025-01-01T00:00:00Z
p_lead,partners,Partner lead,1,0.2,lead,2025-01-01T00:00:00Z
p_prop,partners,Partner offer,2,0.5,proposal,2025-01-01T00:00:00Z
p_won,partners,Partner signed,3,1,closing,2025-01-01T00:00:00Z
p_lost,partners,Partner lost,4,0,lost,2025-01-01T00:00:00Z
""",
    "crm/deals.csv": """\
deal_id,account_id,owner_id,deal_name,pipeline_id,stage_id,amount,currency,status,created_at,closed_at,updated_at
S1,A1,U1,Alfa licences,sales,s_won,100000,RUB,won,2026-02-02T09:00:00Z,2026-02-12T09:00:00Z,2026-02-12T09:00:00Z
S2,A2,U1,Beta pilot,sales,s_lost,50000,RUB,lost,2026-02-03T09:00:00Z,2026-02-10T09:00:00Z,2026-02-10T09:00:00Z
S3,A1,U1,Alfa rollout,sales,s_prop,40000,RUB,open,2026-02-05T09:00:00Z,,2026-02-08T09:00:00Z
S4,A2,U1,Beta licences,,s_won,60000,RUB,won,2026-02-06T09:00:00Z,2026-02-26T09:00:00Z,2026-02-26T09:00:00Z
P1,A3,U2,Gamma reseller,partners,p_won,300000,RUB,won,2026-01-20T09:00:00Z,2026-02-20T09:00:00Z,2026-02-20T09:00:00Z
P2,A3,U2,Gamma referral,partners,p_lost,10000,RUB,lost,2026-02-07T09:00:00Z,2026-02-09T09:00:00Z,2026-02-09T09:00:00Z
P3,A1,U2,Alfa via partner,,p_prop,80000,RUB,open,2026-02-10T09:00:00Z,,2026-02-15T09:00:00Z
P4,A1,U2,Alfa partner add-on,partners,p_won,20000,RUB,won,2026-02-15T09:00:00Z,2026-02-22T09:00:00Z,2026-02-22T09:00:00Z
""",
    "crm/deal_stage_history.csv": """\
deal_id,stage_id,entered_at
S1,s_lead,2026-02-02T09:00:00Z
S1,s_qual,2026-02-04T09:00:00Z
S1,s_prop,2026-02-06T09:00:00Z
S1,s_won,2026-02-12T09:00:00Z
S2,s_lead,2026-02-03T09:00:00Z
S2,s_qual,2026-02-05T09:00:00Z
S2,s_lost,2026-02-10T09:00:00Z
S3,s_lead,2026-02-05T09:00:00Z
S3,s_prop,2026-02-08T09:00:00Z
S4,s_lead,2026-02-06T09:00:00Z
S4,s_won,2026-02-26T09:00:00Z
P1,p_lead,2026-01-20T09:00:00Z
P1,p_prop,2026-02-01T09:00:00Z
P1,p_won,2026-02-20T09:00:00Z
P2,p_lead,2026-02-07T09:00:00Z
P2,p_lost,2026-02-09T09:00:00Z
P3,p_lead,2026-02-10T09:00:00Z
P3,p_prop,2026-02-15T09:00:00Z
P4,p_lead,2026-02-15T09:00:00Z
P4,p_won,2026-02-22T09:00:00Z
""",
    "crm/deal_contacts.csv": """\
deal_id,contact_id,role,updated_at
S1,K1,decision_maker,2026-02-02T09:00:00Z
S4,K2,user,2026-02-06T09:00:00Z
P1,K3,decision_maker,2026-01-20T09:00:00Z
P1,K4,decision_maker,2026-01-20T09:00:00Z
P4,K1,user,2026-02-15T09:00:00Z
""",
    "crm/activities.csv": """\
activity_id,deal_id,account_id,contact_id,owner_id,channel,occurred_at,updated_at
ACT1,S1,A1,K1,U1,call,2026-02-01T10:00:00Z,2026-02-01T10:00:00Z
ACT2,P1,A3,K3,U2,meeting,2026-02-01T10:00:00Z,2026-02-01T10:00:00Z
ACT3,P4,A1,K1,U2,email,2026-02-16T10:00:00Z,2026-02-16T10:00:00Z
ACT4,S4,A2,K2,U1,email,2026-02-10T10:00:00Z,2026-02-10T10:00:00Z
""",
}


def _q(numerator: int | str, denominator: int = 1) -> Decimal:
    """numerator / denominator at the comparison's precision."""
    return (Decimal(numerator) / Decimal(denominator)).quantize(PRECISION)


def _num(value: Any) -> Any:
    return value.quantize(PRECISION) if isinstance(value, Decimal) else value


def _rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return [tuple(_num(v) for v in row) for row in conn.execute(query).fetchall()]


def _keyed(dsn: str, query: str, width: int = 1) -> dict[Any, tuple[Any, ...]]:
    """The rows of `query` by their first `width` columns (one key, or a tuple of them)."""
    rows = _rows(dsn, query)
    keyed = {(row[0] if width == 1 else row[:width]): row[width:] for row in rows}
    assert len(keyed) == len(rows), rows
    return keyed


def _write_drop(root: Path) -> Path:
    for relpath, text in DROP.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _build(dsn: str, tmp_path: Path, pipelines: list[str]) -> None:
    """The night of AS_OF into the candidate schemas, the settings fixed here (night_vars would take
    them from the environment, B2B_SALES_PIPELINES and the others)."""
    settings = {
        "reporting_currency": "RUB",
        "fx_base_currency": "RUB",
        "reporting_timezone": "UTC",
        "sales_pipelines": pipelines,
        "crm_source": "files",
        "billing_source": "files",
    }
    result = run_dbt(
        ["build"],
        dsn=dsn,
        vars=night_vars(AS_OF) | settings,
        target_path=tmp_path / "target",
        log_path=tmp_path / "logs",
    )
    assert result.success, [f"{n.unique_id}: {n.message}" for n in result.failed_nodes]
    assert not result.failed_nodes


def _deals(dsn: str) -> dict[str, tuple[Any, ...]]:
    return _keyed(dsn, "select deal_id, pipeline_id, is_sales_pipeline from core__candidate.fct_deals")


def _funnel(dsn: str) -> dict[Any, tuple[Any, ...]]:
    return _keyed(
        dsn,
        "select cohort_month, stage_key, deals_reached from marts__candidate.sales_funnel",
        width=2,
    )


def _performance(dsn: str) -> dict[Any, tuple[Any, ...]]:
    return _keyed(
        dsn,
        "select month, deals_won, deals_lost, win_rate, won_amount, avg_deal_size, avg_cycle_days,"
        " median_cycle_days from marts__candidate.sales_performance_monthly",
    )


def _customer_value(dsn: str) -> dict[Any, tuple[Any, ...]]:
    return _keyed(
        dsn,
        "select accounts.crm_account_id, value.weighted_open_pipeline, value.potential_contract_value"
        " from marts__candidate.customer_value as value"
        " inner join core__candidate.dim_accounts as accounts on value.account_key = accounts.account_key",
    )


def _repeat(dsn: str) -> dict[Any, tuple[Any, ...]]:
    return _keyed(
        dsn,
        "select month, customers_with_purchase, customers_with_repeat_purchase, repeat_purchase_rate"
        " from marts__candidate.repeat_purchase_monthly",
    )


def _reps(dsn: str) -> dict[Any, tuple[Any, ...]]:
    return _keyed(
        dsn,
        "select month, sales_rep_name, deals_won, deals_lost, won_amount, avg_cycle_days"
        " from marts__candidate.sales_rep_performance_monthly",
        width=2,
    )


def _channels(dsn: str) -> dict[Any, tuple[Any, ...]]:
    return _keyed(
        dsn,
        "select month, channel, won_deals_touched, activities, share_of_won_deals"
        " from marts__candidate.won_deal_channel_mix_monthly",
        width=2,
    )


def _stakeholders(dsn: str) -> dict[Any, tuple[Any, ...]]:
    return _keyed(
        dsn,
        "select month, deals_won, avg_contacts_per_won_deal, avg_decision_makers_per_won_deal,"
        " share_with_decision_maker from marts__candidate.deal_stakeholders_monthly",
    )


def _stage_durations(dsn: str) -> dict[Any, tuple[Any, ...]]:
    return _keyed(
        dsn,
        "select month, stage_key, stage_entries, completed_stays, open_stays, avg_days_in_stage"
        " from marts__candidate.stage_durations_monthly",
        width=2,
    )


def _funnel_of(reached: dict[dt.date, list[int]]) -> dict[Any, tuple[Any, ...]]:
    """The funnel's deals_reached of each cohort month, given the count reaching each of the seven
    ordered stages (lead .. post_sale)."""
    stages = ("lead", "qualification", "relationship", "proposal", "negotiation", "closing", "post_sale")
    return {
        (month, stage): (count,)
        for month, counts in reached.items()
        for stage, count in zip(stages, counts, strict=True)
    }


def test_only_the_chosen_pipelines_count_in_the_sales_marts(warehouse: str, tmp_path: Path) -> None:
    load_drop(warehouse, _write_drop(tmp_path / "drop"))

    # ------------------------------ default: every pipeline counts ------------------------------
    _build(warehouse, tmp_path, [])

    # the pipeline of S4 and P3 (no pipeline_id of their own) is their current stage's
    assert _deals(warehouse) == {
        "S1": ("sales", True),
        "S2": ("sales", True),
        "S3": ("sales", True),
        "S4": ("sales", True),
        "P1": ("partners", True),
        "P2": ("partners", True),
        "P3": ("partners", True),
        "P4": ("partners", True),
    }
    # cohort 2026-01: P1 (reached 6). Cohort 2026-02: S1 6, S2 2, S3 4, S4 6, P2 1, P3 4, P4 6:
    #   lead 7; qualification (>= 2) 6: all but P2; relationship and proposal (>= 4) 5: S1 S3 S4 P3 P4;
    #   negotiation and closing (>= 5) 3: S1 S4 P4; post_sale 0
    assert _funnel(warehouse) == _funnel_of({JAN: [1, 1, 1, 1, 1, 1, 0], FEB: [7, 6, 5, 5, 3, 3, 0]})
    # closed in February: won S1 S4 P1 P4, lost S2 P2. win rate 4 / 6;
    # won amount 100000 + 60000 + 300000 + 20000 = 480000, avg deal size 480000 / 4 = 120000;
    # cycles 11, 20, 31, 7: avg 69 / 4 = 17.25, median (11 + 20) / 2 = 15.5
    assert _performance(warehouse) == {FEB: (4, 2, _q(4, 6), _q(480000), _q(120000), _q(69, 4), _q("15.5"))}
    # customers (a won deal): A1 (S1, P4), A2 (S4), A3 (P1). Open: S3 40000 x 0.5 = 20000 and
    # P3 80000 x 0.5 = 40000, both A1's: 60000. No subscriptions: potential value = open pipeline.
    assert _customer_value(warehouse) == {
        "A1": (_q(60000), _q(60000)),
        "A2": (_q(0), _q(0)),
        "A3": (_q(0), _q(0)),
    }
    # purchases: A1 S1 (02-12) and P4 (02-22): a repeat; A2 S4; A3 P1. 3 customers, 1 repeat, 1 / 3
    assert _repeat(warehouse) == {FEB: (3, 1, _q(1, 3))}
    # Anna (U1): won S1 S4 (160000; cycles 11, 20: 15.5), lost S2. Boris (U2): won P1 P4 (320000;
    # cycles 31, 7: 19), lost P2.
    assert _reps(warehouse) == {
        (FEB, "Anna Sales"): (2, 1, _q(160000), _q("15.5")),
        (FEB, "Boris Partners"): (2, 1, _q(320000), _q(19)),
    }
    # 4 won deals: call S1; email S4 and P4; meeting P1
    assert _channels(warehouse) == {
        (FEB, "call"): (1, 1, _q(1, 4)),
        (FEB, "email"): (2, 2, _q(2, 4)),
        (FEB, "meeting"): (1, 1, _q(1, 4)),
    }
    # won S1 (1 contact, 1 decision maker), S4 (1, 0), P1 (2, 2), P4 (1, 0):
    # contacts 5 / 4 = 1.25, decision makers 3 / 4 = 0.75, with one 2 / 4 = 0.5
    assert _stakeholders(warehouse) == {FEB: (4, _q(5, 4), _q(3, 4), _q(1, 2))}
    # January: P1's lead entry, 01-20 -> 02-01 = 12 days. February leads: S1 2, S2 2, S3 3, S4 20,
    # P2 2, P3 5, P4 7 days: 41 / 7. February proposals: S1 6 days, P1 19 days; S3 and P3 still there.
    durations = _stage_durations(warehouse)
    assert durations[(JAN, "lead")] == (1, 1, 0, _q(12))
    assert durations[(FEB, "lead")] == (7, 7, 0, _q(41, 7))
    assert durations[(FEB, "proposal")] == (4, 2, 2, _q(25, 2))

    # ------------------------------ only `sales` counts ------------------------------
    _build(warehouse, tmp_path, ["sales"])

    # every deal stays in core with its pipeline; the partners' deals are flagged
    assert _deals(warehouse) == {
        "S1": ("sales", True),
        "S2": ("sales", True),
        "S3": ("sales", True),
        "S4": ("sales", True),
        "P1": ("partners", False),
        "P2": ("partners", False),
        "P3": ("partners", False),
        "P4": ("partners", False),
    }
    assert _keyed(warehouse, "select stage_id, is_sales_pipeline from core__candidate.dim_stages") == {
        **{stage: (True,) for stage in ("s_lead", "s_qual", "s_prop", "s_won", "s_lost")},
        **{stage: (False,) for stage in ("p_lead", "p_prop", "p_won", "p_lost")},
    }
    # the stage history and deal contacts of the partners' deals stay in core too
    assert _rows(warehouse, "select count(*) from core__candidate.fct_deal_stage_history") == [(20,)]
    assert _rows(warehouse, "select count(*) from core__candidate.fct_deal_contacts") == [(5,)]

    # no January cohort (P1 was its only deal). February: S1 6, S2 2, S3 4, S4 6:
    #   lead 4; qualification 4; relationship and proposal 3: S1 S3 S4; negotiation and closing 2: S1 S4
    assert _funnel(warehouse) == _funnel_of({FEB: [4, 4, 3, 3, 2, 2, 0]})
    # won S1 S4, lost S2: win rate 2 / 3; won amount 160000, avg deal size 80000;
    # cycles 11 and 20: avg and median 15.5
    assert _performance(warehouse) == {FEB: (2, 1, _q(2, 3), _q(160000), _q(80000), _q("15.5"), _q("15.5"))}
    # customers: A1 (S1), A2 (S4); A3's only won deal is P1, a partners' deal: not a customer.
    # A1's open pipeline: S3 only, 20000 (P3 is a partners' deal)
    assert _customer_value(warehouse) == {"A1": (_q(20000), _q(20000)), "A2": (_q(0), _q(0))}
    # purchases: A1 S1, A2 S4: 2 customers, no repeat
    assert _repeat(warehouse) == {FEB: (2, 0, _q(0))}
    assert _reps(warehouse) == {(FEB, "Anna Sales"): (2, 1, _q(160000), _q("15.5"))}
    # won S1 (call), S4 (email): 1 of 2 each; P1's meeting and P4's email do not count
    assert _channels(warehouse) == {(FEB, "call"): (1, 1, _q(1, 2)), (FEB, "email"): (1, 1, _q(1, 2))}
    # won S1 (1, 1), S4 (1, 0): contacts 2 / 2 = 1, decision makers 1 / 2, with one 1 / 2
    assert _stakeholders(warehouse) == {FEB: (2, _q(1), _q(1, 2), _q(1, 2))}
    # February only: lead S1 2, S2 2, S3 3, S4 20 (27 / 4); qualification S1 2, S2 5 (7 / 2);
    # proposal S1 6 completed, S3 open; closing S1 and S4 leave at their close (0); lost S2 (0)
    assert _stage_durations(warehouse) == {
        (FEB, "lead"): (4, 4, 0, _q(27, 4)),
        (FEB, "qualification"): (2, 2, 0, _q(7, 2)),
        (FEB, "proposal"): (2, 1, 1, _q(6)),
        (FEB, "closing"): (2, 2, 0, _q(0)),
        (FEB, "lost"): (1, 1, 0, _q(0)),
    }
