"""PostgreSQL connection strings: checked and shown without their password.

A DSN may carry a password (``postgresql://ann:s3cret@db/notes``); every message, ``rag config`` and
the store's ``location`` show it masked, and a check's error never repeats it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")


def check_dsn(dsn: str) -> None:
    """Raise ValueError (a message without the DSN) unless ``dsn`` is a usable PostgreSQL URL."""
    try:
        parts = urlsplit(dsn)
        _ = parts.port  # raises on a bad port
    except ValueError:
        raise ValueError("is not a valid PostgreSQL DSN (check the port)") from None
    if parts.scheme not in POSTGRES_SCHEMES or not parts.hostname or not parts.path.strip("/"):
        raise ValueError("must be a PostgreSQL DSN such as postgresql://user@host:5432/notes")


def dsn_has_password(dsn: str) -> bool:
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return False
    return parts.password is not None or "password=" in parts.query


def mask_dsn(dsn: str) -> str:
    """The DSN as safe to show: ``postgresql://ann:s3cret@db:5432/notes?…`` → ``postgresql://ann:***@db:5432/notes``."""
    parts = urlsplit(dsn)
    user = parts.username or ""
    secret = ":***" if dsn_has_password(dsn) else ""
    login = f"{user}{secret}@" if user or secret else ""
    return f"{parts.scheme}://{login}{parts.hostname}:{parts.port or 5432}{parts.path}"
