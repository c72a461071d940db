"""Load time, time to first token and tokens/s of a local GGUF model, per thread count.

    python scripts/measure_local_llm.py MODEL.gguf [--threads 1 2] [--prompt-tokens 1000] [--max-tokens 64]

The prompt is real note text from corpus/ cut to about --prompt-tokens tokens (counted by the model's
own tokenizer via /tokenize), sent as one streamed chat completion to a fresh server per thread count,
so no prompt cache helps. Prompt and generation speeds are llama.cpp's own timings from the last chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

from openai import OpenAI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rag.answer.llm.local import LocalEndpoint, LocalModelServer  # noqa: E402 -- after the path set-up above


def _token_count(endpoint: LocalEndpoint, text: str) -> int:
    root = endpoint.base_url.removesuffix("/v1")
    request = urllib.request.Request(f"{root}/tokenize", data=json.dumps({"content": text}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return len(json.load(response)["tokens"])


def _prompt(endpoint: LocalEndpoint, tokens: int) -> tuple[str, int]:
    """Corpus text whose token count is just under ``tokens`` (bisection on characters)."""
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "corpus").glob("*.*")))
    low, high = 0, len(text)
    while high - low > 20:
        middle = (low + high) // 2
        low, high = (middle, high) if _token_count(endpoint, text[:middle]) <= tokens else (low, middle)
    return text[:low], _token_count(endpoint, text[:low])


def measure(path: Path, threads: int, prompt_tokens: int, max_tokens: int) -> dict[str, float]:
    started = time.monotonic()
    with LocalModelServer(path, threads=threads, ctx=prompt_tokens + max_tokens + 256) as endpoint:
        load = time.monotonic() - started
        notes, counted = _prompt(endpoint, prompt_tokens)
        client = OpenAI(base_url=endpoint.base_url, api_key="not-needed", timeout=600)
        sent = time.monotonic()
        first = None
        timings: dict = {}
        stream = client.chat.completions.create(
            model=endpoint.model, max_tokens=max_tokens, temperature=0, stream=True,
            messages=[{"role": "user", "content": f"{notes}\n\nSummarise the notes above in one sentence."}])
        for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.monotonic() - sent
            timings = (chunk.model_extra or {}).get("timings") or timings
        total = time.monotonic() - sent
    return {"threads": threads, "load_s": load, "prompt_tokens": counted, "ttft_s": first or float("nan"),
            "prompt_tok_s": timings.get("prompt_per_second", float("nan")),
            "gen_tokens": timings.get("predicted_n", 0), "gen_tok_s": timings.get("predicted_per_second", float("nan")),
            "total_s": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prompt-tokens", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    print(f"model {args.model.name}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("threads  load s  prompt tok  TTFT s  prompt tok/s  gen tok  gen tok/s  total s")
    for threads in args.threads:
        r = measure(args.model, threads, args.prompt_tokens, args.max_tokens)
        print(f"{r['threads']:>7}  {r['load_s']:6.1f}  {r['prompt_tokens']:>10}  {r['ttft_s']:6.2f}  "
              f"{r['prompt_tok_s']:12.1f}  {r['gen_tokens']:>7}  {r['gen_tok_s']:9.1f}  {r['total_s']:7.1f}")


if __name__ == "__main__":
    main()
