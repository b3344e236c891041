{#
    A monthly mart has one row per month, with no gaps, through the month of the as-of date
    (docs/metrics.md, "Conventions"), or `rows_per_month` rows (e.g. one per stage). Fails (one row) when
    the column holds a non-first-of-month date, a month with another number of rows, a gap, or does not
    end at the as-of month.
#}
{% test complete_month_series(model, column_name, rows_per_month=1) %}

with

months as (

    select {{ column_name }} as month
    from {{ model }}

),

bounds as (

    select
        min(month) as first_month,
        max(month) as last_month,
        count(*) as month_rows,
        count(distinct month) as distinct_months,
        count(*) filter (where month <> date_trunc('month', month)::date) as misaligned_months,
        (select max(n) from (select count(*) as n from months group by month) as per_month) as max_rows_in_a_month
    from months

)

select *
from bounds
where
    month_rows > 0
    and (
        last_month <> {{ as_of_month() }}
        or distinct_months * {{ rows_per_month }} <> month_rows
        or max_rows_in_a_month <> {{ rows_per_month }}
        or misaligned_months > 0
        or distinct_months <> (
            (extract(year from last_month) - extract(year from first_month)) * 12
            + extract(month from last_month) - extract(month from first_month) + 1
        )
    )

{% endtest %}
