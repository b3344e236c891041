{{
    config(
        indexes=[
            {'columns': ['date_day'], 'unique': True}
        ]
    )
}}

-- The calendar: one row per day from var dim_date_start through the end of the as-of date's year.

with

days as (

    select
        {{ day_series(
            "date '" ~ var('dim_date_start', '2010-01-01') ~ "'",
            "(date_trunc('year', " ~ as_of_date() ~ ") + interval '1 year' - interval '1 day')::date"
        ) }} as date_day

),

final as (

    select
        date_day,
        {{ month_of('date_day') }} as month_start,
        {{ month_end('date_day') }} as month_end,
        (date_trunc('quarter', date_day))::date as quarter_start,
        extract(year from date_day)::integer as year_number,
        extract(quarter from date_day)::integer as quarter_number,
        extract(month from date_day)::integer as month_number,
        extract(day from date_day)::integer as day_of_month,
        extract(isodow from date_day)::integer as iso_day_of_week,
        extract(week from date_day)::integer as iso_week_number,
        extract(isoyear from date_day)::integer as iso_year,
        to_char(date_day, 'YYYY-MM') as year_month_label,
        extract(isodow from date_day) in (6, 7) as is_weekend,
        date_day = {{ month_end('date_day') }} as is_month_end,
        date_day <= {{ as_of_date() }} as is_on_or_before_as_of_date
    from days

)

select * from final
