"""The reads of ``.creds`` issuance's hot path as plain SQL through Django's connection (as billing/selectors.py
reads ``ngs.usage``): the same rows, filters and tenant scope as the ORM queries they replace, without compiling
a query on every request (each ORM query cost 0.3-0.5 ms of Python; docs/BENCHMARKS.md, REST API).

Only the SQL text is built once per process (table and column names from the models, quoted for the database in
use); every value (the caller, the keys asked for, the rows read) is read per call, so nothing secret and nothing
that can go stale is kept. The rows become model instances with ``Model.from_db`` (the columns not read are
deferred, as with ``.only()``). A miss returns None: the callers then ask the ORM selectors, whose NotFound and
messages stay the API's.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.models import Model

from accounts_service.models import Account, NatsUser, TeamMembership
from accounts_service.models.tenancy import token_team_id
from operators.models import SealedSeed, SigningKey


def _columns(model: type[Model], attnames: tuple[str, ...]) -> tuple[str, ...]:
    """``attnames`` in the model's concrete field order (what ``from_db`` expects) and only those."""
    order = [f.attname for f in model._meta.concrete_fields]
    missing = set(attnames) - set(order)
    if missing:  # pragma: no cover - a renamed field: fail at the first read, not with a wrong row
        raise LookupError(f"{model.__name__} has no column {sorted(missing)}")
    return tuple(a for a in order if a in attnames)


# The SQL below is put together from the models' table and column names only (quoted); every value is a parameter.


def _select(alias: str, model: type[Model], attnames: tuple[str, ...]) -> str:
    q = connection.ops.quote_name
    return ", ".join(f"{alias}.{q(model._meta.get_field(a).column)}" for a in attnames)


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _datetime(value: Any) -> Any:
    # What the ORM's converters do with a DateTimeField column (SQLite: aware in UTC under USE_TZ).
    convert = getattr(connection.ops, "convert_datetimefield_value", None)
    return convert(value, None, connection) if convert is not None and value is not None else value


def _instance(model: type[Model], attnames: tuple[str, ...], values: tuple, datetimes: tuple[str, ...] = ()) -> Any:
    values = tuple(_datetime(v) if a in datetimes else v for a, v in zip(attnames, values, strict=True))
    return model.from_db(connection.alias, attnames, values)


def _fetch_one(sql: str, params: list[Any]) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _scope(user) -> tuple[str, list[Any]] | None:
    """The tenant scope of ``for_user`` as a WHERE fragment on the membership ``m`` and the account ``a``."""
    if not getattr(user, "is_authenticated", False):
        return None
    only = token_team_id(user)
    if only is None:
        return "m.user_id = %s", [user.pk]
    return "m.user_id = %s AND a.team_id = %s", [user.pk, only]


# ------------------------------------------------------------------------------------------------
# The creds route: account, user, the caller's role and what the .creds is made of, in one read
# ------------------------------------------------------------------------------------------------

@functools.cache
def _creds_sql(vendor: str, restricted: bool) -> tuple[str, tuple, tuple, tuple]:
    user = _columns(NatsUser, ("id", "account_id", "name", "public_key", "seed_id", "jwt", "revoked_at"))
    account = _columns(Account, ("id", "team_id", "public_key"))
    seed = _columns(SealedSeed, ("id", "public_key", "key_type", "key_id", "sealed", "created_at"))
    q = connection.ops.quote_name
    scope = "m.user_id = %s AND a.team_id = %s" if restricted else "m.user_id = %s"
    sql = (
        f"SELECT {_select('u', NatsUser, user)}, {_select('a', Account, account)}, {_select('s', SealedSeed, seed)}, "  # noqa: S608
        f"m.{q('role')} FROM {_table(NatsUser)} u "
        f"INNER JOIN {_table(Account)} a ON a.{q('id')} = u.{q('account_id')} "
        f"INNER JOIN {_table(TeamMembership)} m ON m.{q('team_id')} = a.{q('team_id')} "
        f"LEFT OUTER JOIN {_table(SealedSeed)} s ON s.{q('id')} = u.{q('seed_id')} "
        f"WHERE a.{q('public_key')} = %s AND u.{q('public_key')} = %s AND {scope} LIMIT 1"
    )
    return sql, user, account, seed


def creds_user_for_actor(*, actor, account_public_key: str, user_public_key: str) -> NatsUser | None:
    """The user ``user_public_key`` of the account ``account_public_key`` in one of ``actor``'s teams, with its
    account (id, team, key), JWT, revocation and sealed seed, and ``actor_role`` (the caller's role in the team);
    None when there is none (unknown account or user, another team's, or a token restricted to another team)."""
    scope = _scope(actor)
    if scope is None:
        return None
    sql, user_cols, account_cols, seed_cols = _creds_sql(connection.vendor, token_team_id(actor) is not None)
    row = _fetch_one(sql, [account_public_key, user_public_key, *scope[1]])
    if row is None:
        return None
    n_user, n_account, n_seed = len(user_cols), len(account_cols), len(seed_cols)
    user = _instance(NatsUser, user_cols, row[:n_user], datetimes=("revoked_at",))
    account = _instance(Account, account_cols, row[n_user:n_user + n_account])
    seed_values = row[n_user + n_account:n_user + n_account + n_seed]
    user.account = account
    user.seed = (_instance(SealedSeed, seed_cols, seed_values, datetimes=("created_at",))
                 if seed_values[0] is not None else None)
    user.actor_role = row[-1]
    return user


# ------------------------------------------------------------------------------------------------
# The create route: the account's id, team and key with the caller's role; the signing key that signs
# ------------------------------------------------------------------------------------------------


@functools.cache
def _account_sql(vendor: str, restricted: bool) -> tuple[str, tuple]:
    account = _columns(Account, ("id", "team_id", "public_key"))
    q = connection.ops.quote_name
    scope = "m.user_id = %s AND a.team_id = %s" if restricted else "m.user_id = %s"
    sql = (f"SELECT {_select('a', Account, account)}, m.{q('role')} FROM {_table(Account)} a "  # noqa: S608
           f"INNER JOIN {_table(TeamMembership)} m ON m.{q('team_id')} = a.{q('team_id')} "
           f"WHERE a.{q('public_key')} = %s AND {scope} LIMIT 1")
    return sql, account


ACCOUNT_KEY_ONLY = ("public_key",)  # AccountScopedApi.account_fields of the routes that read the account this way


def account_for_actor(*, actor, public_key: str) -> tuple[Account, str] | None:
    """The account ``public_key`` (only its id, team and key) in one of ``actor``'s teams and the caller's role
    there; None when there is none."""
    scope = _scope(actor)
    if scope is None:
        return None
    sql, cols = _account_sql(connection.vendor, token_team_id(actor) is not None)
    row = _fetch_one(sql, [public_key, *scope[1]])
    if row is None:
        return None
    return _instance(Account, cols, row[:-1]), row[-1]


@functools.cache
def _signing_key_sql(vendor: str) -> tuple[str, tuple, tuple]:
    key = _columns(SigningKey, ("id", "owner_public_key", "public_key", "role", "seed_id"))
    seed = _columns(SealedSeed, ("id", "public_key", "sealed"))
    q = connection.ops.quote_name
    sql = (f"SELECT {_select('k', SigningKey, key)}, {_select('s', SealedSeed, seed)} FROM {_table(SigningKey)} k "  # noqa: S608
           f"INNER JOIN {_table(SealedSeed)} s ON s.{q('id')} = k.{q('seed_id')} "
           f"WHERE k.{q('owner_public_key')} = %s AND k.{q('role')} = %s "
           f"ORDER BY k.{q('id')} LIMIT 1")
    return sql, key, seed


def signing_key_for(*, owner_public_key: str, role: str) -> SigningKey | None:
    """The account's signing key of ``role`` ("" the account's own unscoped key, the oldest first) with its sealed
    seed (the columns signing reads), or None."""
    sql, key_cols, seed_cols = _signing_key_sql(connection.vendor)
    row = _fetch_one(sql, [owner_public_key, role])
    if row is None:
        return None
    key = _instance(SigningKey, key_cols, row[:len(key_cols)])
    key.seed = _instance(SealedSeed, seed_cols, row[len(key_cols):])
    return key


@functools.cache
def _lock_sql(vendor: str) -> str:
    q = connection.ops.quote_name
    return f"SELECT {q('id')} FROM {_table(Account)} WHERE {q('id')} = %s FOR UPDATE"  # noqa: S608


def account_row_lock(*, account_id: int) -> None:
    """Lock the account's row until the transaction ends, as ``signing.account_lock`` does, without reading the
    row back (a user's creation only needs the lock). Only where ``SELECT ... FOR UPDATE`` is a row lock."""
    _fetch_one(_lock_sql(connection.vendor), [account_id])
