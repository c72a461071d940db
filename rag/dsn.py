"""PostgreSQL connection strings: checked and shown without their password.

A DSN may carry a password (``postgresql://ann:s3cret@db/notes``); every message, ``rag config`` and
the store's ``location`` show it masked, and a check's error never repeats it. The login is read as
libpq would not: up to the *last* ``@``, so a password holding an unencoded ``/``, ``@``, ``?`` or
``#`` is still masked whole (and :func:`check_dsn` refuses it: libpq would read part of it as the
host). An ``@`` in the query must then be percent-encoded too.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .errors import RagError

POSTGRES_SCHEMES = ("postgresql", "postgres")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DSNError(RagError, ValueError):
    """A connection string that cannot be used; the message never repeats it (it may hold a password)."""


def _login_and_rest(dsn: str) -> tuple[str, str, str]:
    """(scheme, login, rest): ``postgresql://ann:p/w@db/notes`` → ("postgresql", "ann:p/w", "db/notes")."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return "", "", dsn
    login, at, host = rest.rpartition("@")  # the last @ anywhere: a ? or # in a password cannot hide it
    return scheme, login if at else "", host if at else rest


def check_dsn(dsn: str) -> None:
    """Raise DSNError (a message without the DSN) unless ``dsn`` is a usable PostgreSQL URL."""
    if _CONTROL.search(dsn):
        raise DSNError("holds a control character (a line break?): give the DSN on one line")
    scheme, login, rest = _login_and_rest(dsn)
    if any(c in login for c in "/@?#"):
        raise DSNError("has a '/', '@', '?' or '#' in its user or password: percent-encode them (/ as %2F, "
                       "@ as %40, ? as %3F, # as %23)")
    try:
        parts = urlsplit(f"{scheme}://{rest}")
        _ = parts.port  # raises on a bad port
    except ValueError:
        raise DSNError("is not a valid PostgreSQL DSN (check the port)") from None
    if scheme not in POSTGRES_SCHEMES or not parts.hostname or not parts.path.strip("/"):
        raise DSNError("must be a PostgreSQL DSN such as postgresql://user@host:5432/notes")


def dsn_has_password(dsn: str) -> bool:
    _, login, _ = _login_and_rest(dsn)
    return ":" in login or "password=" in dsn.partition("?")[2]


def mask_dsn(dsn: str) -> str:
    """The DSN as safe to show: ``postgresql://ann:s3cret@db:5432/notes?…`` → ``postgresql://ann:***@db:5432/notes``."""
    scheme, login, rest = _login_and_rest(dsn)
    user = login.partition(":")[0]
    secret = ":***" if dsn_has_password(dsn) else ""
    shown = f"{user}{secret}@" if user or secret else ""
    try:
        parts = urlsplit(f"{scheme}://{rest}")
        where = f"{parts.hostname}:{parts.port or 5432}{parts.path}"
    except ValueError:
        where = "(an invalid address)"
    return _CONTROL.sub("?", f"{scheme}://{shown}{where}")
