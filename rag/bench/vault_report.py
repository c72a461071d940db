"""`rag bench --vault`'s targets and readable report (vault.md): every number from vault.json."""

from __future__ import annotations

from rag.eval.tables import markdown_table

#: Issue 24's limits at 10,000 notes (≤, except the pace ratio, ≥).
TARGETS = {"first_search_s": 60.0, "chunks_per_s_vs_notes": 0.8, "update_vs_notes": 2.0,
           "build_peak_rss_mb": 1500.0, "serve_peak_rss_mb": 1500.0, "search_p95_ms": 50.0}


#: What `rag bench --vault` measures of each corpus, in order.
STEPS = ("build", "update", "status", "serve", "models")


def _get(part: dict, step: str, *keys: str) -> float | None:
    value = part.get(step)
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def check_targets(report: dict) -> dict:
    """Each target with what the vault measured (None until that step ran)."""
    vault, notes = report["vault"], report["notes"]
    measured = {
        "first_search_s": _get(vault, "build", "first_search_s"),
        "chunks_per_s_vs_notes": _ratio(_get(vault, "build", "chunks_per_s"), _get(notes, "build", "chunks_per_s")),
        "update_vs_notes": _ratio(_get(vault, "update", "seconds"), _get(notes, "update", "seconds")),
        "build_peak_rss_mb": _get(vault, "build", "peak_rss_mb"),
        "serve_peak_rss_mb": _get(vault, "serve", "peak_rss_mb"),
        "search_p95_ms": _get(vault, "serve", "search_ms", "p95"),
    }
    out = {}
    for key, limit in TARGETS.items():
        value = measured[key]
        met = value is not None and (value >= limit if key == "chunks_per_s_vs_notes" else value <= limit)
        out[key] = {"target": limit, "measured": value, "met": met}
    return out


def _models(part: dict, cores: int) -> tuple[str | None, float | None]:
    """Each embedder's pace on one core, their ceiling on every core (each core embedding with each
    model in turn), and the full build's pace as a share of that ceiling."""
    models = part.get("models", {})
    alone = "; ".join(f"{name} {pace}/s" for name, pace in models.get("chunks_per_s", {}).items()) or None
    in_turn = models.get("all_in_turn_chunks_per_s")
    ceiling = round(cores * in_turn, 1) if in_turn else None
    if alone:
        alone += f"; all in turn on {cores} cores {ceiling}/s (sample {models['sample']})"
    return alone, _ratio(_get(part, "build", "chunks_per_s"), ceiling)


def _column(part: dict, cores: int) -> list[object]:
    b, u, s, st = (part.get(k, {}) for k in ("build", "update", "serve", "status"))
    c = part.get("corpus", {})
    pace = "; ".join(f"{name} {e['chunks']} in {e['finished_s']} s ({e['chunks_per_s']}/s)"
                     for name, e in b.get("embedders", {}).items()) or None
    ms = s.get("search_ms", {})
    return [c.get("notes"), c.get("entries"), c.get("chunks"), b.get("first_search_s"), b.get("polls"),
            b.get("seconds"), b.get("chunks_per_s"), pace, *_models(part, cores), b.get("peak_rss_mb"),
            u.get("seconds"), u.get("peak_rss_mb"), st.get("seconds"), s.get("load_seconds"), ms.get("p50"),
            ms.get("p95"), s.get("peak_rss_mb"), part.get("index_size_mb")]


ROWS = ["notes", "entries", "chunks", "first search answered, s after `rag index` started", "searches polled",
        "full build s", "chunks/s (full build)", "per embedder: chunks, last one done at s (chunks/s since notes read)",
        "each embedder on one core, on a sample of these chunks, chunks/s (what the models allow here)",
        "full build's pace / the models' ceiling on every core",
        "build peak RSS MB", "one-note update s", "update peak RSS MB", "`rag status --json` s", "index load s",
        "warm search p50 ms", "warm search p95 ms", "serving peak RSS MB", "index MB"]


def render_markdown(r: dict) -> str:
    """vault.json as a report; steps not run yet show a dash, failed ones their error."""
    m, vault, notes = r["machine"], r["vault"], r["notes"]
    styles = ", ".join(f"{k} {v}" for k, v in vault.get("styles", {}).items())
    size = vault.get("corpus", {}).get("notes", "?")
    fast, until, slow = r["poll_s"]
    out = [f"# `rag bench --vault`: a vault beside the bundled notes\n\nRun {r['started']} on {m['cpus']} CPU cores "
           f"(shared; load average {m['load_average_at_start']} at start), Python {m['python']}, embedders "
           f"{', '.join(r['embedders']) or 'none'}; the whole run took {r.get('total_seconds', 0):.0f} s. Vault: "
           f"{vault['source']}{f' ({styles})' if styles else ''}, seed {r['seed']}. Raw numbers: the .json beside.\n",
           f"## Targets (issue 24's, set for 10,000 notes; this vault: {size} notes)\n",
           markdown_table(["target", "limit", "measured", "met"],
                          [[k, t["target"], t["measured"], "yes" if t["met"] else "**no**"]
                           for k, t in r["targets"].items()]),
           "\n## Measurements\n",
           "Each corpus is copied to a work folder. The build is `rag index` from nothing, timed from outside "
           "(interpreter start and model loading included), while a second process runs `rag search --json` every "
           f"{fast} s for the first {until:.0f} s, then every {slow} s, until it answers with hits: the first search "
           "is when that answer came. The polls share the CPU with the build. Peak RSS is each process's own "
           "(`wait4`). The update appends a "
           "paragraph to one note and runs `rag index`. The update and the serving process each start once the "
           "1-minute load average is under 1 (at most 120 s later), so neither pays for the build before it. "
           "Search latency is a fresh serving process: load, "
           f"warm-up, then {r['queries_timed']} searches over the {r['questions']} canned questions, in process.\n",
           markdown_table(["", "vault", "bundled notes"],
                          [[label, a, b] for label, a, b in
                           zip(ROWS, _column(vault, m["cpus"]), _column(notes, m["cpus"]), strict=True)])]
    for part in (vault, notes):
        errors = [f"- {part['label']}, {step}: {part[step]['error']}" for step in STEPS
                  if "error" in part.get(step, {})]
        out += ["", *errors] if errors else []
    return "\n".join(out) + "\n"
