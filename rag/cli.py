"""The ``rag`` command line: a thin layer over the importable stages (contract: docs/cli.md)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from .config import Config
from .index import Index, IndexUnavailable, build_index
from .retrieve import Filters, Hit, Retriever


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _print_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def read_batch(path: Path) -> Iterator[tuple[object, str]]:
    """(id, question) per line of a JSONL file; a bad line is a usage error naming the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            yield row.get("id", n), str(row["question"])
        except (json.JSONDecodeError, KeyError, AttributeError):
            raise UsageError(f'{path}:{n}: expected a JSON object with a "question"') from None


def config_from(args: argparse.Namespace) -> Config:
    config = Config.from_env().with_(corpus=args.corpus, index=args.index)
    if getattr(args, "embedders", None) is not None:
        config = config.with_(embedders=tuple(s for s in args.embedders.split(",") if s))
    if args.llm_model or args.llm_base_url:  # the key stays in the environment: flags show in `ps`
        config = config.with_(llm=replace(config.llm, model=args.llm_model or config.llm.model,
                                          base_url=args.llm_base_url or config.llm.base_url))
    return config


def open_retriever(config: Config) -> Retriever:
    return Retriever(Index.load(config.index), config)


def filters_from(args: argparse.Namespace) -> Filters:
    return Filters(file_glob=args.file, since=args.since, until=args.until)


def format_hit(hit: Hit) -> str:
    e = hit.entry
    meta = " · ".join(x for x in (f"{hit.path}:{e.line_start}-{e.line_end}", e.date, e.url) if x)
    return f"{hit.rank:>2}. {e.title}  ({hit.score:.4f})\n    {meta}\n    {hit.snippet}"


# ---------------------------------------------------------------------------- commands

def cmd_index(args: argparse.Namespace) -> int:
    config = config_from(args)
    if args.watch:
        from .watch import watch_index

        return watch_index(config)
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bars: dict[str, tqdm] = {}

        def progress(stage: str, done: int, total: int) -> None:
            bar = bars.get(stage) or bars.setdefault(stage, tqdm(total=total, desc=stage, unit="chunk"))
            bar.n = done
            bar.refresh()
            if done >= total:
                bar.close()

    report = build_index(config, progress=progress)
    for skip in report.skipped:
        print(f"skipped {skip.file}: {skip.reason}", file=sys.stderr)
    print(report.summary(), file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    config = config_from(args)
    retriever = open_retriever(config)
    filters = filters_from(args)
    if args.batch:
        for qid, question in read_batch(Path(args.batch)):
            hits = retriever.search(question, k=args.k, filters=filters)
            _print_json({"id": qid, "question": question, "hits": [h.to_json() for h in hits]})
        return 0
    if not args.question:
        raise UsageError("give a QUESTION or --batch FILE.jsonl")
    hits = retriever.search(args.question, k=args.k, filters=filters)
    if args.json:
        _print_json({"question": args.question, "hits": [h.to_json() for h in hits]})
    else:
        print("\n".join(format_hit(h) for h in hits) if hits else "no matching entries")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from .answer import answer_question, format_sources

    config = config_from(args)
    retriever = open_retriever(config)
    filters = filters_from(args)
    use_llm = False if args.no_llm else None
    if args.batch:
        for qid, question in read_batch(Path(args.batch)):
            result = answer_question(question, retriever, config, k=args.k, filters=filters, use_llm=use_llm)
            _print_json({"id": qid, **result.to_json()})
        return 0
    if not args.question:
        raise UsageError("give a QUESTION or --batch FILE.jsonl")
    stream = sys.stdout.isatty() and not args.json

    def on_token(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    result = answer_question(args.question, retriever, config, k=args.k, filters=filters,
                             use_llm=use_llm, on_token=on_token if stream else None)
    if args.json:
        _print_json(result.to_json())
        return 0
    if result.notice:
        print(result.notice, file=sys.stderr)
    print(("\n" if stream else result.text + "\n") + format_sources(result))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import EvalError, run_eval

    try:
        run_eval(config_from(args), qa_path=Path(args.qa), out_dir=Path(args.out),
                 configs=args.config or None, judge=args.judge)
    except EvalError as exc:
        raise UsageError(str(exc)) from None
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .ui import serve

    serve(config_from(args), host=args.host, port=args.port)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    run_bench(config_from(args), out=Path(args.out), scales=args.scale)
    return 0


# ---------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--corpus", type=Path, help="notes folder (default: $RAG_CORPUS, else ./corpus)")
    common.add_argument("--index", type=Path, help="index folder (default: $RAG_INDEX, else ./index)")
    common.add_argument("--llm-model", help="chat model for answers (default: $RAG_LLM_MODEL; none: extractive)")
    common.add_argument("--llm-base-url", help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)")
    common.add_argument("--embedders", help="comma-separated dense embedders (default: $RAG_EMBEDDERS, "
                        "else e5-small-q4,use-m3; empty for lexical only)")
    query = argparse.ArgumentParser(add_help=False)
    query.add_argument("question", nargs="?")
    query.add_argument("-k", type=int, default=10, help="number of entries (default 10)")
    query.add_argument("--json", action="store_true", help="machine-readable output")
    query.add_argument("--batch", help="JSONL file of {id, question}, one JSON line out per line in")
    query.add_argument("--file", help="only notes whose path matches this glob")
    query.add_argument("--since", help="only entries dated on or after YYYY-MM-DD")
    query.add_argument("--until", help="only entries dated on or before YYYY-MM-DD")

    parser = argparse.ArgumentParser(prog="rag", description="Search and ask your paper notes.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("index", parents=[common], help="build or update the index")
    p.add_argument("--watch", action="store_true", help="keep the index current while notes change")
    p.set_defaults(func=cmd_index)
    p = sub.add_parser("search", parents=[common, query], help="hybrid search")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("ask", parents=[common, query], help="a cited answer")
    p.add_argument("--no-llm", action="store_true", help="extractive answer from the notes, no model")
    p.set_defaults(func=cmd_ask, k=6)
    p = sub.add_parser("eval", parents=[common], help="the evaluation suite")
    p.add_argument("--qa", default="eval/qa.jsonl")
    p.add_argument("--out", default="eval/out")
    p.add_argument("--config", action="append", help="configuration to compare (repeatable)")
    p.add_argument("--judge", action="store_true", help="LLM-as-judge (needs a configured endpoint)")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("serve", parents=[common], help="the Gradio app")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("bench", parents=[common], help="speed and scale benchmarks")
    p.add_argument("--out", default="eval/results/bench.json")
    p.add_argument("--scale", type=int, action="append", help="synthetic corpus size (repeatable)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, IndexUnavailable) as exc:
        print(f"rag: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
