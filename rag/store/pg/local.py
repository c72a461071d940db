"""A throw-away local PostgreSQL 16 + pgvector: the server the PyPI wheel ``pgserver`` ships.

For the tests and for `rag bench --pg`, so the Postgres store is measured and tested against a real
server from a command in the repo, offline. ``initdb`` refuses to run as root, so as root the
cluster belongs to ``nobody``; it listens on 127.0.0.1 and a free port only, with password logins,
in a temporary folder (:meth:`LocalPostgres.running` starts, stops and removes it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from rag.net import free_port
from rag.store.base import IndexUnavailable


def pgserver_bin() -> Path:
    """pgserver's ``bin`` folder; IndexUnavailable (one line) when the package is not installed."""
    try:
        import pgserver
    except ImportError:
        raise IndexUnavailable("a local PostgreSQL needs the pgserver package: pip install 'notes-rag[test]' "
                               "(or give a server's DSN)") from None
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


class LocalPostgres:
    """One cluster in ``root``: ``init()``, ``start()``, ``dsn()``, ``stop()``."""

    def __init__(self, root: Path, password: str) -> None:
        self.bin = pgserver_bin()
        self.root, self.data, self.port = root, root / "data", free_port()
        self.password = password
        self.os_user = "nobody" if os.geteuid() == 0 else None

    def __repr__(self) -> str:  # never the password
        return f"LocalPostgres(127.0.0.1:{self.port}, {self.root})"

    def _run(self, *args: str) -> None:
        command = [*(("runuser", "-u", self.os_user, "--") if self.os_user else ()), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")

    def init(self) -> None:
        if self.os_user:
            shutil.chown(self.root, self.os_user)
            probe = subprocess.run(["runuser", "-u", self.os_user, "--", "test", "-x", str(self.bin / "initdb")],
                                   check=False)
            if probe.returncode:  # the virtualenv sits where nobody cannot reach (under /root): use a copy
                site, copy = self.bin.parent.parent.parent, self.root / "pgserver-copy"
                shutil.copytree(site / "pgserver" / "pginstall", copy / "pgserver" / "pginstall", symlinks=True)
                shutil.copytree(site / "pgserver.libs", copy / "pgserver.libs")  # the binaries' RPATH
                self.bin = copy / "pgserver" / "pginstall" / "bin"
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.os_user:
            shutil.chown(pwfile, self.os_user)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", f"--pwfile={pwfile}",
                  "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C")
        pwfile.unlink()

    def start(self, config: Mapping[str, str] | None = None) -> None:
        """Start the server; ``config``: server settings (``-c name=value``), e.g. ``shared_buffers``."""
        options = " ".join([f"-h 127.0.0.1 -p {self.port} -k {self.root}",
                            *(f"-c {name}={value}" for name, value in (config or {}).items())])
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60",
                  "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def dsn(self, db: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        """A login on this server (the superuser's password unless another is given)."""
        login = f"{user}:{password or self.password}" if user == "postgres" or password else user
        return f"postgresql://{login}@127.0.0.1:{self.port}/{db}"

    @classmethod
    @contextmanager
    def running(cls, config: Mapping[str, str] | None = None, password: str | None = None,
                prefix: str = "rag-pg-") -> Iterator[Self]:
        """A fresh cluster (a random superuser password unless given), started for the block, then
        stopped and removed."""
        pgserver_bin()  # not installed: say so before making anything
        cluster = cls(Path(tempfile.mkdtemp(prefix=prefix)), password or secrets.token_urlsafe(16))
        try:
            cluster.init()
            cluster.start(config)
            yield cluster
        finally:
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):  # never started, or gone
                cluster.stop("immediate")
            shutil.rmtree(cluster.root, ignore_errors=True)

    def admin(self, *statements: str, db: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.dsn(db), autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql)
