"""Every zoo model against bert-base on this CPU, fp32 and INT8, one interleaved run each.

    python tools/bench_zoo.py [--windows 3] [--runs 40]

Writes tools/results/bench_zoo.json and the README section `bench_zoo`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgebert import zoo
from edgebert.bench import bench, markdown
from edgebert.files import atomic_write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_section import replace_section  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_zoo.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    models = [n for n in zoo.names() if n != "bert-base"]
    results = {}
    body = []
    for precision in ("fp32", "int8"):
        r = bench(models, baseline="bert-base", seq_len=128, batch=1, threads=args.threads,
                  int8=precision == "int8", runs=args.runs, windows=args.windows, progress=print)
        results[precision] = r
        body.append(f"**{precision.upper()}** (`python tools/bench_zoo.py`)\n\n" + markdown(r))
        print(markdown(r))
    atomic_write_json(RESULTS, results)
    replace_section("bench_zoo", "\n".join(body))


if __name__ == "__main__":
    main()
