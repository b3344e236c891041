"""The row rules of docs/sources.md as SQL: one failure condition per column rule.

Rows land as text; one set-based pass then sends the rows that break a rule to
`raw_files.quarantine` with every reason. An empty value has already been made
NULL (COPY's FORCE_NULL, or `nullif` for JSON), so "missing" is `is null`.

Two forms of the same rules:
- `screen_condition()` runs on every row of every file and only says whether a row
  breaks some rule: one boolean expression, cheap checks first. On PostgreSQL 15,
  which has no `pg_input_is_valid`, it checks timestamps and numbers by casting
  them, which raises on the first bad value; the caller then runs the exact form.
- `entity_rules()` (with `failure_condition()` and `reason_expression()`) never
  raises and names every reason; it runs on the few rows the screen found, or on
  a whole file whose screen raised. Its conditions are never NULL.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from b2b_pipeline.filedrop.spec import Column, Entity, Kind

DATE_SHAPE = "____-__-__"
# The forms of an ISO 8601 timestamp docs/sources.md takes (PostgreSQL's input, which the cast check
# still applies, takes much more: zone names and abbreviations such as `MSK`, `Europe/Moscow`,
# `PST8PDT` or `UTC`, which would load and be typed by a rule the file never meant):
# a date `YYYY-MM-DD`, optionally `T` (or `t`, or a space, as PostgreSQL and RFC 3339 read it) and
# a time `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff`, optionally an offset `Z`, `±hh:mm`, `±hhmm` or `±hh`
# (ISO 8601's three forms of a UTC offset). Without an offset the time is UTC. The dbt macro
# `b2b_timestamp` reads exactly these forms (an offset after a two-digit hour, or none).
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?)?$"
)
# a date and a time followed by something else: a zone that is no ISO 8601 offset (a name, `+3`, ` +03:00`)
TIMESTAMP_WITH_ZONE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?[^0-9.:]"
ZONE_REASON = "not an ISO 8601 timestamp, its zone is not an offset Z, ±hh:mm, ±hhmm or ±hh (none: UTC)"


@dataclass(frozen=True)
class Rule:
    """A failure condition on one column and the reason it gives."""

    condition: sql.Composable
    reason: sql.Composable


def _number_text(col: sql.Identifier, decimal_comma: bool) -> sql.Composable:
    return sql.SQL("replace({}, ',', '.')").format(col) if decimal_comma else col


def column_rules(column: Column, decimal_comma: bool) -> list[Rule]:
    """The failure conditions of one column. `decimal_comma`: the file is `;`-delimited."""
    col = sql.Identifier(column.name)
    name = column.name
    rules: list[Rule] = []

    def quoted_value(prefix: str) -> sql.Composable:
        return sql.SQL("{} || ' (' || left({}, 60) || ')'").format(sql.Literal(f"{name}: {prefix}"), col)

    if column.required:
        rules.append(
            Rule(
                sql.SQL("({} is null)").format(col),
                sql.Literal(f"{name}: required value missing"),
            )
        )
    if column.required_when:
        other, values = column.required_when
        rules.append(
            Rule(
                sql.SQL("({} is null and coalesce({} in ({}), false))").format(
                    col, sql.Identifier(other), sql.SQL(", ").join(map(sql.Literal, values))
                ),
                sql.Literal(f"{name}: required when {other} is {' or '.join(values)}"),
            )
        )
    if column.kind is Kind.TIMESTAMP:
        zone = sql.SQL("({c} !~ {form} and {c} ~ {zoned})").format(
            c=col, form=sql.Literal(TIMESTAMP_PATTERN), zoned=sql.Literal(TIMESTAMP_WITH_ZONE)
        )
        rules.append(Rule(sql.SQL("({} is not null and {})").format(col, zone), quoted_value(ZONE_REASON)))
        rules.append(
            Rule(
                sql.SQL(
                    "({c} is not null and not {zone} and not ({c} ~ {form} and "
                    "coalesce(raw_files.is_valid_input({c}, 'timestamptz'), false)))"
                ).format(c=col, zone=zone, form=sql.Literal(TIMESTAMP_PATTERN)),
                quoted_value("not an ISO 8601 timestamp"),
            )
        )
    elif column.kind is Kind.DATE:
        rules.append(
            Rule(
                sql.SQL(
                    "({c} is not null and not ({c} like {shape} and coalesce(raw_files.is_valid_input({c}, "
                    "'date'), false)))"
                ).format(c=col, shape=sql.Literal(DATE_SHAPE)),
                quoted_value("not a date YYYY-MM-DD"),
            )
        )
    elif column.kind in (Kind.NUMBER, Kind.INTEGER):
        text = _number_text(col, decimal_comma) if column.kind is Kind.NUMBER else col
        type_name = "numeric" if column.kind is Kind.NUMBER else "bigint"
        valid = sql.SQL("(lower({c}) not like '%n%' and coalesce(raw_files.is_valid_input({t}, {ty}), false))").format(
            c=col, t=text, ty=sql.Literal(type_name)
        )
        rules.append(
            Rule(
                sql.SQL("({} is not null and not {})").format(col, valid),
                quoted_value("not a number" if column.kind is Kind.NUMBER else "not a whole number"),
            )
        )
        if column.non_negative:
            rules.append(
                Rule(
                    sql.SQL("({c} is not null and ltrim({c}) like '-%' and {v})").format(c=col, v=valid),
                    quoted_value("negative"),
                )
            )
        if column.min_value is not None or column.max_value is not None:
            lo = sql.Literal(column.min_value if column.min_value is not None else float("-inf"))
            hi = sql.Literal(column.max_value if column.max_value is not None else float("inf"))
            rules.append(
                Rule(
                    sql.SQL(
                        "({c} is not null and case when {v} then {t}::numeric not between {lo} and {hi} else false end)"
                    ).format(c=col, v=valid, t=text, lo=lo, hi=hi),
                    quoted_value(f"outside [{column.min_value}, {column.max_value}]"),
                )
            )
    elif column.kind is Kind.BOOLEAN:
        rules.append(
            Rule(
                sql.SQL(
                    "({c} is not null and {c} not in ('true', 'false', '1', '0', 'TRUE', 'FALSE', 'True', 'False'))"
                ).format(c=col),
                quoted_value("not a boolean (true/false/1/0)"),
            )
        )
    if column.allowed:
        rules.append(
            Rule(
                sql.SQL("({c} is not null and {c} not in ({vals}))").format(
                    c=col, vals=sql.SQL(", ").join(map(sql.Literal, column.allowed))
                ),
                quoted_value(f"not one of {', '.join(column.allowed)}"),
            )
        )
    return rules


def entity_rules(entity: Entity, decimal_comma: bool) -> list[Rule]:
    return [rule for column in entity.columns for rule in column_rules(column, decimal_comma)]


def screen_condition(entity: Entity, decimal_comma: bool, *, casts: bool) -> sql.Composable:
    """True for a row that breaks a rule of `entity` (NULL or false for a good one): the
    rows `failure_condition(entity_rules(...))` finds, by a cheaper expression.

    `casts`: check a timestamp or a number by casting it, which raises on a value the
    exact rules reject (PostgreSQL 15, where the non-raising check is a PL/pgSQL
    exception block); otherwise by `raw_files.is_valid_input` (pg_input_is_valid).
    """
    checks: list[sql.Composable] = []
    typed: list[sql.Composable] = []  # the costlier checks go last: OR stops at the first true one

    def valid(text: sql.Composable, type_name: str) -> sql.Composable:
        if casts:  # of a value that is not NULL: true, or the cast raises
            return sql.SQL("({}::{} is not null)").format(text, sql.SQL(type_name))
        return sql.SQL("raw_files.is_valid_input({}, {})").format(text, sql.Literal(type_name))

    for column in entity.columns:
        col = sql.Identifier(column.name)
        if column.required:
            checks.append(sql.SQL("{} is null").format(col))
        if column.required_when:
            other, values = column.required_when
            checks.append(
                sql.SQL("({} is null and {} in ({}))").format(
                    col, sql.Identifier(other), sql.SQL(", ").join(map(sql.Literal, values))
                )
            )
        if column.allowed:
            checks.append(sql.SQL("{} not in ({})").format(col, sql.SQL(", ").join(map(sql.Literal, column.allowed))))
        if column.kind is Kind.BOOLEAN:
            checks.append(
                sql.SQL("{} not in ('true', 'false', '1', '0', 'TRUE', 'FALSE', 'True', 'False')").format(col)
            )
        elif column.kind is Kind.TIMESTAMP:
            typed.append(
                sql.SQL("({c} is not null and ({c} !~ {s} or not {v}))").format(
                    c=col, s=sql.Literal(TIMESTAMP_PATTERN), v=valid(col, "timestamptz")
                )
            )
        elif column.kind is Kind.DATE:
            typed.append(
                sql.SQL("({c} is not null and ({c} not like {s} or not {v}))").format(
                    c=col, s=sql.Literal(DATE_SHAPE), v=valid(col, "date")
                )
            )
        elif column.kind in (Kind.NUMBER, Kind.INTEGER):
            text = _number_text(col, decimal_comma) if column.kind is Kind.NUMBER else col
            # `n`/`N`: NaN and Infinity read as numbers, and are none (lower(c) like '%n%' in the rules)
            parts = [sql.SQL("{c} like '%n%' or {c} like '%N%'").format(c=col)]
            if column.non_negative:
                parts.append(sql.SQL("ltrim({}) like '-%'").format(col))
            number_type = "numeric" if column.kind is Kind.NUMBER else "bigint"
            parts.append(sql.SQL("not {}").format(valid(text, number_type)))
            if column.min_value is not None or column.max_value is not None:
                lo = sql.Literal(column.min_value if column.min_value is not None else float("-inf"))
                hi = sql.Literal(column.max_value if column.max_value is not None else float("inf"))
                parts.append(sql.SQL("{}::numeric not between {} and {}").format(text, lo, hi))
            typed.append(sql.SQL("({} is not null and ({}))").format(col, sql.SQL(" or ").join(parts)))
    conditions = checks + typed
    return sql.SQL("({})").format(sql.SQL(" or ").join(conditions)) if conditions else sql.SQL("false")


def failure_condition(rules: list[Rule]) -> sql.Composable:
    """True for a row that breaks any rule."""
    if not rules:
        return sql.SQL("false")
    return sql.SQL("({})").format(sql.SQL(" or ").join(r.condition for r in rules))


def reason_expression(rules: list[Rule]) -> sql.Composable:
    """Every reason a row fails, `; `-separated."""
    if not rules:
        return sql.Literal("")
    cases = sql.SQL(", ").join(sql.SQL("case when {} then {} end").format(r.condition, r.reason) for r in rules)
    return sql.SQL("concat_ws('; ', {})").format(cases)
