"""A real PostgreSQL 16 + pgvector for tests: the server the PyPI wheel ``pgserver`` ships.

``initdb`` refuses to run as root, so as root the cluster belongs to ``nobody``; it listens on
127.0.0.1 and a free port only, with password logins (so every test also checks that a password
never shows), in a temporary folder that the tests' session fixture removes. Also here: small
synthetic generations, which the tests' subprocesses build too.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
from pathlib import Path

import psycopg

from rag.chunking import Chunk
from rag.embedding import HashEmbedder
from rag.lexical import tokenize
from rag.manifest import Counts, Manifest, NoteRecord, index_fingerprint
from rag.notes import Entry
from rag.store import GenerationData

SUPERUSER_PASSWORD = "pg-Secret-4711"  # must never appear in any output
_databases = itertools.count()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """One throw-away cluster; ``dsn()`` names a database and login on it."""

    def __init__(self, root: Path) -> None:
        import pgserver

        self.bin = Path(pgserver.__file__).parent / "pginstall" / "bin"
        self.root, self.data, self.port = root, root / "data", _free_port()
        self.os_user = "nobody" if os.geteuid() == 0 else None

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
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if self.os_user:
            shutil.chown(pwfile, self.os_user)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", f"--pwfile={pwfile}",
                  "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C")

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60",
                  "-o", f"-h 127.0.0.1 -p {self.port} -k {self.root}", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def dsn(self, db: str = "postgres", user: str = "postgres", password: str | None = SUPERUSER_PASSWORD) -> str:
        login = f"{user}:{password}" if password is not None else user
        return f"postgresql://{login}@127.0.0.1:{self.port}/{db}"

    def admin(self, *statements: str, db: str = "postgres") -> None:
        with psycopg.connect(self.dsn(db), autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql)

    def new_database(self) -> str:
        name = f"rag_test_{os.getpid()}_{next(_databases)}"
        self.admin(f"CREATE DATABASE {name}")
        return name


def make_generation(version: int, entries: int = 6, changed: tuple[int, ...] = ()) -> GenerationData:
    """A small synthetic generation: ``entries`` papers of two chunks each, hash-embedded.

    Every title carries ``v{version}`` only for the entries in ``changed`` (the rest are the same in
    every version, so an incremental commit can reuse them); ``manifest.corpus`` is ``v{version}``.
    """
    embedder = HashEmbedder()
    papers, chunks = [], []
    for i in range(entries):
        tag = f" v{version}" if i in changed else ""
        text = f"Paper {i}{tag} studies 注意力 机制 topic{i % 3} and kv-cache {i}.\nResults on 长上下文 bench{i}."
        entry = Entry(file=f"note{i % 2}.md", title=f"Paper {i}{tag}", line_start=10 * i + 1,
                      line_end=10 * i + 2, url=f"https://arxiv.org/abs/2601.{i:05d}", date=f"2026-01-0{i % 9 + 1}",
                      text=text)
        papers.append(entry)
        for j, line in enumerate(text.split("\n")):
            chunks.append(Chunk(entry_id=entry.id, file=entry.file, line_start=entry.line_start + j,
                                line_end=entry.line_start + j, text=line, title=entry.title))
    tokens = [tokenize(c.embed_text) for c in chunks]
    vectors = {"hash": embedder.embed_passages([c.embed_text for c in chunks])}
    notes = {name: NoteRecord(sha256=f"{version}-{name}", entries=sum(1 for e in papers if e.file == name),
                              chunks=sum(1 for c in chunks if c.file == name)) for name in ("note0.md", "note1.md")}
    manifest = Manifest(fingerprint=index_fingerprint(("hash",), 256, 32), embedder_ids={"hash": embedder.id},
                        notes=notes, counts=Counts(notes=2, entries=len(papers), chunks=len(chunks)),
                        built_at="2026-01-01T00:00:00", corpus=f"v{version}")
    return GenerationData(manifest, papers, chunks, tokens, vectors)
