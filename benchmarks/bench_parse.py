"""Throughput of ``parse_signal`` on one core.

Runs every message of ``shared/signals/public.jsonl`` (chatter and signals
alike) ``--repeat`` times in a single thread, several rounds, and prints
messages/second.  The headline figure is the best round (as ``timeit``
does): on a shared machine the slower rounds measure the neighbours, not
the parser; the median is printed too.

Target: over 20,000 msg/s, so one worker process keeps up with any number
of Discord channels (Discord itself rate-limits far below that).

    .venv/bin/python benchmarks/bench_parse.py [--repeat 200] [--rounds 5]

Exit status 1 when the best round is under the target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.signals import parse_signal  # noqa: E402

CORPUS = ROOT.parent / "shared" / "signals" / "public.jsonl"
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
TARGET = 20_000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    texts = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    signals = sum(parse_signal(text, now=NOW) is not None for text in texts)  # also warms regexes and caches
    messages = texts * args.repeat
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for text in messages:
            parse_signal(text, now=NOW)
        times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)
    rate = len(messages) / best
    print(f"corpus: {len(texts)} messages ({signals} signals, {len(texts) - signals} chatter), "
          f"{args.rounds} rounds; median round {len(messages) / median:,.0f} msg/s")
    print(f"parse_signal: {len(messages)} messages in {best:.3f} s = {rate:,.0f} msg/s "
          f"(best round, one thread; target {TARGET:,})")
    return 0 if rate >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
