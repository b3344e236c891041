"""The cosmos profile mapping for the warehouse connection: a password is optional (trust auth)."""

from __future__ import annotations

from typing import Any, ClassVar

from cosmos.profiles.postgres.user_pass import PostgresUserPasswordProfileMapping


class WarehouseProfileMapping(PostgresUserPasswordProfileMapping):
    """Maps the `b2b_warehouse` connection to a dbt-postgres profile.

    Like cosmos's own Postgres mapping, with two differences the embedded warehouse needs:
    an empty password is allowed (it uses trust authentication on a unix socket), and the
    host may be a socket directory, which dbt-postgres (psycopg2) accepts as it is.
    """

    required_fields: ClassVar[list[str]] = ["host", "user", "dbname"]

    def get_dbt_value(self, name: str) -> Any:
        value = super().get_dbt_value(name)
        if name == "password" and value is None:
            return ""
        return value
