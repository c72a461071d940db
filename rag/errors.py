"""The one base of every error whose message is one line meant for the user.

Each stage raises its own kind (a setting, a note, the index, a question, a model…); a front end
catches :class:`RagError` once and shows ``str(exc)``, so a new kind of user error is never a
traceback because an ``except`` tuple somewhere was not extended. Programming errors stay outside
it and keep their traceback.
"""

from __future__ import annotations


class RagError(Exception):
    """A problem the user can act on; ``str(exc)`` is one line, never a secret."""
