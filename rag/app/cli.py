"""The ``rag`` command line: a thin layer over :mod:`rag.service` (contract: ../shared/docs/cli.md).

Everything a user can get wrong (a setting, a flag, a date, a batch file, a question) is turned
into one line on stderr and exit code 2; nothing here prints a traceback or a secret.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from pydantic import BaseModel

from rag.answer.mode import AnswerMode
from rag.contract import (
    AnswerOut,
    AskRequest,
    HitOut,
    RelatedOut,
    SearchOut,
    SearchRequest,
)
from rag.embed.models import configure_process
from rag.errors import RagError
from rag.retrieve.searcher import Filters
from rag.service import Notes
from rag.settings import MAX_SEARCH_K, Settings, load_settings
from rag.store import IndexStore

from .batch import read_batch
from .terminal import format_hit, progress_printer, report_lines, status_lines, terminal_text, write_stream


class UsageError(RagError):
    """Bad input from the user: printed as one line, exit code 2."""


def _print_json(obj: dict | BaseModel, lead: dict | None = None) -> None:
    """One JSON line, after the keys of ``lead`` (a batch's question ``id``)."""
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
    sys.stdout.write(json.dumps({**(lead or {}), **data}, ensure_ascii=False, allow_nan=False) + "\n")
    sys.stdout.flush()


def settings_from(args: argparse.Namespace) -> Settings:
    """Defaults < rag.toml < environment < flags. The API key only ever comes from the environment."""
    flags = {"index.corpus": args.corpus, "index.path": args.index, "index.store": args.store,
             "index.embedders": args.embedders,
             "llm.model": args.llm_model, "llm.base_url": args.llm_base_url,
             "serve.host": getattr(args, "host", None), "serve.port": getattr(args, "port", None),
             "serve.mcp_port": getattr(args, "mcp_port", None)}
    return load_settings(args.config, os.environ, flags)


def filters_from(args: argparse.Namespace) -> Filters:
    try:
        return Filters.parse(args.file, args.since, args.until, args.tag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_related(args: argparse.Namespace, settings: Settings) -> int:
    file, sep, line = args.entry.rpartition(":")
    if not sep or not file or not line.isdigit():
        raise UsageError(f"{args.entry!r} is not FILE:LINE (a file of the corpus and a line of one of its entries)")
    notes = Notes(settings)
    try:
        entry, related = notes.related(file, int(line), args.k or 5)
    except LookupError as exc:
        raise UsageError(str(exc)) from None
    searcher = notes.searcher()
    if args.json:
        _print_json(RelatedOut.of(entry, related, searcher.note_path))
        return 0
    print(terminal_text(f"related to {entry.title} ({entry.file}:{entry.line_start}-{entry.line_end}):"))
    for n, r in enumerate(related, start=1):
        link = " · linked" if r.linked else ""
        print(terminal_text(f"{n:>2}. {r.entry.title}\n    {searcher.note_path(r.entry.file)}:"
                            f"{r.entry.line_start}-{r.entry.line_end}{link}"))
    if not related:
        print("no related entries")
    return 0


# ---------------------------------------------------------------------------- commands

def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    notes = Notes(settings)
    if args.check:
        return check_index(notes.store)
    if args.watch:
        from rag.build.watch import watch_index

        return watch_index(settings, notes.store, notes.models)
    report = notes.build(progress=progress_printer(sys.stderr.isatty()), rehash=args.rehash)
    for line in report_lines(report):
        print(line, file=sys.stderr)
    if args.json:
        _print_json(report.to_json())
    return 0


def check_index(store: IndexStore) -> int:
    """``rag index --check``: the live generation against its manifest; one line per problem, exit 2."""
    problems = store.check()
    for problem in problems:
        print(f"rag: {store.location}: {terminal_text(problem)}", file=sys.stderr)
    if problems:
        return 2
    counts = store.manifest().counts
    print(f"index in {store.location} is whole: {counts.notes} notes, {counts.entries} entries, {counts.chunks} chunks")
    return 0


def _questions(args: argparse.Namespace, settings: Settings) -> Iterator[tuple[object | None, str]]:
    if args.batch:
        yield from read_batch(Path(args.batch), settings.answer.max_question_chars)
        return
    if args.question is None:
        raise UsageError("give a QUESTION or --batch FILE.jsonl")
    yield None, args.question


def _say_if_stale(notes: Notes) -> None:
    if why := notes.stale():
        print(f"rag: notice: {notes.store.location}: {why} since it was built; run `rag index` to rebuild it",
              file=sys.stderr)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    notes = Notes(settings)
    _say_if_stale(notes)
    filters = filters_from(args)
    for qid, question in _questions(args, settings):
        result = notes.search(SearchRequest(question=question, k=args.k, filters=filters))
        if args.batch or args.json:
            _print_json(SearchOut(question=result.query.text, hits=[HitOut.of(h) for h in result.hits],
                                  partial=list(result.partial)), {"id": qid} if args.batch else None)
        else:
            print("\n".join(format_hit(h) for h in result.hits) if result.hits else "no matching entries")
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    with Notes(settings) as notes:  # a local model's server stops with it
        _say_if_stale(notes)
        _ask(args, settings, notes)
    return 0


def _ask(args: argparse.Namespace, settings: Settings, notes: Notes) -> None:
    from rag.answer.answer import collect, format_sources

    filters = filters_from(args)
    mode = AnswerMode.EXTRACTIVE if args.no_llm else AnswerMode.AUTO
    stream = sys.stdout.isatty() and not args.json and not args.batch
    for qid, question in _questions(args, settings):
        request = AskRequest(question=question, k=args.k, filters=filters, mode=mode, strict=args.strict or None)
        answer = collect(notes.ask(request), write_stream if stream else None)
        if args.batch or args.json:
            _print_json(AnswerOut.of(answer), {"id": qid} if args.batch else None)
        else:
            if answer.notice:
                print(answer.notice, file=sys.stderr)
            print(terminal_text(("\n" if stream else answer.text + "\n") + format_sources(answer)))


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Every note's state against the live index: the counts, then each skipped and pending file."""
    status = Notes(settings).status()
    if args.json:
        _print_json({"corpus": str(settings.index.corpus), **status.to_json()})
        return 0
    for line in status_lines(status):
        print(line)
    return 0


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """The effective settings, after rag.toml, environment and flags; secrets only as (set)."""
    public = settings.public()
    if args.json:
        _print_json(public)
        return 0
    for section, values in public.items():
        print(f"[{section}]")
        for name, value in values.items():
            print(f"{name} = {json.dumps(value, ensure_ascii=False)}")
        print()
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from rag.embed.models import Models
    from rag.eval.collections import run_collections
    from rag.eval.runner import run_eval

    models = Models()

    def run(local: Settings, qa: Path, out: Path) -> dict:
        print(Notes(local, models).build().summary())  # measured on the notes as they are, by this code
        return run_eval(local, qa_path=qa, out_dir=out, configs=args.eval_config or None, judge=args.judge,
                        split=args.split, limit=args.limit, models=models)

    if args.collection:
        run_collections(settings, Path(args.qa), Path(args.out), [Path(c) for c in args.collection], run, args.split)
    else:
        run(settings, Path(args.qa), Path(args.out))
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from .web import serve

    serve(settings)
    return 0


def cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    from .mcp_server import serve_mcp

    with Notes(settings) as notes:
        _say_if_stale(notes)
        serve_mcp(notes, http=args.http, host=settings.serve.host, port=settings.serve.mcp_port)
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from rag.bench import run_bench, run_vault_bench

    if args.vault is not None or args.vault_dir is not None:
        if args.vault_dir is not None and not args.vault_dir.is_dir():
            raise UsageError(f"--vault-dir {args.vault_dir} is not a folder")
        run_vault_bench(settings, args.vault, Path(args.out or "eval/results/vault.json"), args.vault_dir)
        return 0
    pg = args.pg_dsn or ("local" if args.pg else None)
    if args.stores_only and not (pg or settings.index.store):
        raise UsageError("--stores-only compares the stores: add --pg (a local server) or --pg-dsn DSN")
    run_bench(settings, out=Path(args.out or "eval/results/bench.json"), scales=args.scale,
              compare=args.compare_embedders, pg=pg, stores_only=args.stores_only)
    return 0


# ---------------------------------------------------------------------------- parser

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, like every other user error (argparse would print the usage block too)."""
        self.exit(2, f"{self.prog}: {message}\n")


def _k(value: str) -> int:
    try:
        k = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-k takes a whole number, not {value!r}") from None
    if not 1 <= k <= MAX_SEARCH_K:
        raise argparse.ArgumentTypeError(f"-k must be from 1 to {MAX_SEARCH_K}")
    return k


def _limit(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number from 1, not {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--config", type=Path, help="settings file (default: ./rag.toml when present)")
    common.add_argument("--corpus", type=Path, help="notes folder (default: $RAG_CORPUS, else ./corpus)")
    common.add_argument("--index", type=Path, help="index folder (default: $RAG_INDEX, else ./index)")
    common.add_argument("--store", help="a team's PostgreSQL index instead of the folder: postgresql://user@host/db "
                        "(default: $RAG_STORE; the password from PGPASSWORD or ~/.pgpass)")
    common.add_argument("--llm-model", help="chat model for answers (default: $RAG_LLM_MODEL; none: extractive)")
    common.add_argument("--llm-base-url", help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)")
    common.add_argument("--embedders", help="comma-separated dense embedders (default: $RAG_EMBEDDERS, "
                        "else e5-onnx,use-m3; empty for lexical only)")
    query = _Parser(add_help=False)
    query.add_argument("question", nargs="?")
    query.add_argument("-k", type=_k, help="number of entries (default: retrieval.k = 10; ask: answer.k = 6)")
    query.add_argument("--json", action="store_true", help="machine-readable output")
    query.add_argument("--batch", help="JSONL file of {id, question}, one JSON line out per line in")
    query.add_argument("--file", help="only notes whose path matches this glob")
    query.add_argument("--since", help="only entries dated on or after YYYY-MM-DD")
    query.add_argument("--until", help="only entries dated on or before YYYY-MM-DD")
    query.add_argument("--tag", action="append",
                       help="only entries with this tag (front matter or #tag; repeatable: all of them)")

    parser = _Parser(prog="rag", description="Search and ask your paper notes.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("index", parents=[common], help="build or update the index")
    p.add_argument("--watch", action="store_true", help="keep the index current while notes change")
    p.add_argument("--check", action="store_true", help="verify the index against its manifest and say what is "
                   "wrong (exit 2 when damaged); builds nothing")
    p.add_argument("--rehash", action="store_true", help="read and hash every note, even those whose size and "
                   "times are as when they were indexed")
    p.add_argument("--json", action="store_true", help="also print the build's report as JSON on stdout")
    p.set_defaults(func=cmd_index)
    p = sub.add_parser("status", parents=[common], help="each note: indexed, skipped (why) or pending")
    p.add_argument("--json", action="store_true", help="machine-readable, every file listed")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("search", parents=[common, query], help="hybrid search")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("ask", parents=[common, query], help="a cited answer")
    p.add_argument("--no-llm", action="store_true", help="extractive answer from the notes, no model")
    p.add_argument("--strict", action="store_true", help="leave out sentences their cited source does not back")
    p.set_defaults(func=cmd_ask)
    p = sub.add_parser("related", parents=[common], help="entries most like one entry (wikilinks, then vectors)")
    p.add_argument("entry", help="FILE:LINE, e.g. vault/Papers/HyDE.md:22 (any line of the entry)")
    p.add_argument("-k", type=_k, help="number of related entries (default 5)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_related)
    p = sub.add_parser("config", parents=[common], help="print the effective settings (never a secret)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_config)
    p = sub.add_parser("eval", parents=[common], help="the evaluation suite")
    p.add_argument("--qa", default="eval/qa.jsonl")
    p.add_argument("--out", default="eval/out")
    p.add_argument("--retrievers", dest="eval_config", action="append",
                   help="retrieval configuration to compare, e.g. hybrid, bm25, bm25+e5 (repeatable)")
    p.add_argument("--split", choices=("tune", "report", "all"), default="report",
                   help="which part of the canned set: thresholds are tuned on `tune`, quality is reported on "
                   "`report` (the default)")
    p.add_argument("--judge", action="store_true", help="LLM-as-judge (needs a configured endpoint)")
    p.add_argument("--limit", type=_limit,
                   help="only N questions of the split, evenly spread over it (for a slow local model)")
    p.add_argument("--collection", action="append",
                   help="also a collection of other notes: a folder with notes/ and qa.jsonl, indexed into its "
                   ".index/ (repeatable; e.g. eval/other); each is reported, then all pooled")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("serve", parents=[common], help="the Gradio app")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("mcp", parents=[common], help="serve the notes to agents over MCP (stdio, or --http)")
    p.add_argument("--http", action="store_true", help="streamable HTTP on --host (default 127.0.0.1) instead of stdio")
    p.add_argument("--host")
    p.add_argument("--port", dest="mcp_port", type=int, help="HTTP port (default: serve.mcp_port = 8765)")
    p.set_defaults(func=cmd_mcp)
    p = sub.add_parser("bench", parents=[common], help="speed and scale benchmarks")
    p.add_argument("--out", help="JSON results, a .md beside (default eval/results/bench.json; --vault: vault.json)")
    p.add_argument("--vault", type=_limit, metavar="N", help="instead: a generated vault of N notes in several "
                   "styles beside the bundled notes (first search, build, update, status, search latency)")
    p.add_argument("--vault-dir", type=Path, metavar="DIR", help="with --vault's measurements: a copy of this "
                   "folder as the vault instead of a generated one")
    p.add_argument("--scale", type=int, action="append", help="synthetic corpus size (repeatable)")
    p.add_argument("--compare-embedders", action="append",
                   help="an embedder list to build and time side by side (repeatable)")
    p.add_argument("--pg", action="store_true", help="also compare the PostgreSQL store with the folder store, on a "
                   "throw-away local server (needs the pgserver package)")
    p.add_argument("--pg-dsn", help="the same on this server: an empty scratch database (default: $RAG_STORE)")
    p.add_argument("--stores-only", action="store_true", help="only the store comparison (with --pg or --pg-dsn)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_process()
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        return args.func(args, settings)
    except RagError as exc:
        print(f"rag: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `rag search … | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
