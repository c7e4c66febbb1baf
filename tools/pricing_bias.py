"""Which parts of an architecture does a shipped table price wrong, and by how much?

    python tools/pricing_bias.py --sweep expression [--precision int8] [--hidden 320] [--windows 6]  # ~1 min
    python tools/pricing_bias.py --sweep stack|heads|hidden|alignment|layers|inner ...
    python tools/pricing_bias.py --sweep expression --precision int8 --summary-only   # README section again

A validation's random models mix every axis at once, so a part priced wrong shows
there only as scatter. Here one backbone (`--layers` x `--hidden`, 4 heads of 64,
inner 2x hidden, one standard FFN sub-layer, standard embedding) varies along one
axis, every layer alike:

    expression  EfficientBERT's searched FFNs, activations fused to W1, operations
                before W1, between W1 and W2, after W2
    stack       1-4 sub-layers per layer
    heads       heads x head size from the smallest to the largest
    hidden      hidden sizes on and off the grid (inner 2x hidden, 4x64 heads)
    alignment   every hidden size of the space (multiples of 16) over two steps of the table's
                hidden grid from --hidden: the profiled sizes and the three between each pair
    layers      1-12 layers
    inner       inner size from a quarter of hidden to four times it
    embedding   standard, factorized and trigram embeddings at each size of the space

and every variant is measured interleaved in one worker, `--windows` windows.
Per variant: predicted over measured in canary units (with the standard error of
the measured median), and that ratio over the median of the sweep's ratios, which
takes out the table's overall level (its calibration) and leaves what the varied
part's own pricing misses. One run's ratios move by a few per cent from the
next's (five INT8 sweeps here read the same backbone's ratio between 0.943 and
0.981), so only what repeats counts. Results go to
tools/results/pricing_bias-<sweep>-<precision>.json and the README section
`pricing_bias_<sweep>_<precision>`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_teacher import RESULTS, environment, publish, republish  # noqa: E402
from timing_noise import shipped_table_workloads  # noqa: E402

# (what it probes, expression); the first is the backbone itself.
EXPRESSIONS = (
    ("standard", "W2(gelu(W1(x)))"),
    ("no activation", "W2(W1(x))"),
    ("relu fused", "W2(relu(W1(x)))"),
    ("tanh fused", "W2(tanh(W1(x)))"),
    ("unfused op between", "W2(tanh(gelu(W1(x))))"),
    ("EB1: tanh after W2", "tanh(W2(gelu(W1(x))))"),
    ("EB3: sigmoid after W2, relu", "sigmoid(W2(relu(W1(x))))"),
    ("EB4: max(x, tanh x) before W1", "W2(gelu(W1(max(x, tanh(x)))))"),
    ("EB5: mul(W1 x, x), sliced", "W2(relu(mul(W1(x), x)))"),
    ("add(x) after W2", "add(W2(gelu(W1(x))), x)"),
)


HEADS = ((4, 64), (1, 32), (2, 48), (8, 32), (12, 32), (12, 64))
HIDDENS = (320, 128, 176, 256, 336, 448, 512, 688, 768)
LAYERS = (1, 2, 4, 6, 8, 12)
INNER_SHARES = (2.0, 0.25, 0.5, 1.0, 1.5, 3.0, 4.0)  # inner over hidden (the space's 0.25-4)
EMBEDDINGS = (("standard", None), ("factorized", 64), ("factorized", 128), ("trigram", 64), ("trigram", 128))
SWEEPS = ("expression", "stack", "heads", "hidden", "alignment", "layers", "inner", "embedding")
ALIGNMENT_SPAN, ALIGNMENT_STEP = 128, 16  # two steps of the default grid's hidden sizes (64 apart); the space's step


def record_path(sweep: str, precision: str) -> Path:
    return RESULTS / f"pricing_bias-{sweep}-{precision}.json"


def variants(sweep: str, layers: int, hidden: int, stack: int) -> list:
    """[(label, spec)] along one axis, the backbone itself first."""
    from edgebert.arch import SPACE, ArchSpec, Embedding, LayerSpec, validate

    def model(h: int = hidden, heads: int = 4, head_size: int = 64, ffn: str = EXPRESSIONS[0][1], stack: int = stack,
              depth: int = layers, inner_share: float = 2.0, embedding: Embedding = Embedding()):
        layer = LayerSpec(heads, head_size, SPACE.align(inner_share * h), ffn=ffn, stack=stack)
        return validate(ArchSpec(hidden=h, layers=(layer,) * depth, embedding=embedding))

    if sweep == "expression":
        return [(f"{label} `{expr}`", model(ffn=expr)) for label, expr in EXPRESSIONS]
    if sweep == "stack":
        return [(f"stack {k}", model(stack=k)) for k in (1, 2, 3, 4)]
    if sweep == "heads":
        return [(f"{nh}x{hs}", model(heads=nh, head_size=hs)) for nh, hs in HEADS]
    if sweep == "inner":
        return [(f"inner {SPACE.align(r * hidden)}", model(inner_share=r)) for r in INNER_SHARES]
    if sweep == "layers":
        return [(f"{n} layers", model(depth=n)) for n in LAYERS]
    if sweep == "embedding":
        return [(kind if size is None else f"{kind} E{size}", model(embedding=Embedding(kind, size)))
                for kind, size in EMBEDDINGS]
    if sweep == "alignment":
        return [(f"hidden {h}", model(h=h)) for h in range(hidden, hidden + ALIGNMENT_SPAN + 1, ALIGNMENT_STEP)]
    return [(f"hidden {h}", model(h=h)) for h in HIDDENS]


def markdown(result: dict) -> str:
    import numpy as np

    middle = float(np.median([row["ratio"] for row in result["rows"]]))
    lines = [f"| {result['sweep']} | predicted ms | measured ms (± s.e.) | predicted / measured | over the sweep's median |",
             "|---|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['label']} | {row['predicted_ms']:.2f} | {row['measured_ms']:.2f} (± {row['se_pct']:.1f} %) | "
                     f"{row['ratio']:.3f} | {row['ratio'] / middle:.3f} |")
    lines += ["", f"`python tools/pricing_bias.py --sweep {result['sweep']} --precision {result['precision']} "
                  f"--layers {result['layers']} --hidden {result['hidden']} --stack {result['stack']} "
                  f"--windows {result['windows']}`: {result['layers']}L h{result['hidden']} 4x64 inner "
                  f"{2 * result['hidden']} stack {result['stack']} varied in its "
                  f"{result['sweep']}, every layer alike; {result['table']}; medians over "
                  f"{result['windows']} interleaved windows of {result['runs']} runs; {result['environment']['device']}, "
                  f"{result['environment']['timestamp']}."]
    return "\n".join(lines)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", choices=SWEEPS, default="expression")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="int8")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=320)
    parser.add_argument("--stack", type=int, default=1, help="sub-layers per layer of the backbone")
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--summary-only", action="store_true", help="rewrite the README section from the record")
    args = parser.parse_args()
    section = f"pricing_bias_{args.sweep}_{args.precision}"
    if args.summary_only:
        return republish(record_path(args.sweep, args.precision), section, markdown)
    if args.windows < 3 or args.runs < 1 or not 1 <= args.layers <= 12 or not 1 <= args.stack <= 4:
        raise SystemExit("pricing_bias: --windows must be at least 3, --runs at least 1, --layers 1-12, --stack 1-4")

    import numpy as np

    from edgebert.device.timing import TimingPolicy, measure
    from edgebert.errors import EdgebertError
    from edgebert.latency.predictor import predict

    try:  # an --hidden outside the space, or no table for this machine
        named = variants(args.sweep, args.layers, args.hidden, args.stack)
        table, workloads = shipped_table_workloads([(f"variant{i}", spec) for i, (_, spec) in enumerate(named)],
                                                   precision=args.precision)
    except EdgebertError as exc:
        raise SystemExit(f"pricing_bias: {exc}")
    s = table.settings
    policy = TimingPolicy(threads=s["threads"], spinning=s["spinning"], runs=args.runs, rounds=5,
                          windows=args.windows)
    report = measure(workloads, policy=policy, nominal_canary_ms=table.nominal_canary_ms)
    rows = []
    for (label, spec), w in zip(named, workloads):
        windows = np.asarray(report[w.name].window_normalised, float)
        measured = float(np.median(windows))
        # The standard error of a median of n window figures: 1.253 x 1.483 x MAD / sqrt(n).
        se_pct = 100 * 1.253 * 1.483 * float(np.median(np.abs(windows - measured))) / measured / len(windows) ** 0.5
        predicted = predict(spec, table).normalised
        rows.append({"label": label, "spec": spec.to_dict(), "predicted_ms": predicted * table.nominal_canary_ms,
                     "measured_ms": measured * table.nominal_canary_ms, "se_pct": se_pct, "ratio": predicted / measured,
                     "window_normalised": report[w.name].window_normalised})
    result = {"sweep": args.sweep, "precision": args.precision, "layers": args.layers, "hidden": args.hidden,
              "stack": args.stack, "windows": args.windows,
              "runs": args.runs, "table": table.name, "rows": rows,
              "environment": environment(precision=s["precision"], threads=s["threads"])}
    publish(record_path(args.sweep, args.precision), result, section, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
