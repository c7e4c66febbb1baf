"""Commands about models: zoo, export, bench."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgebert.cli.common import add_command, emit, progress


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "zoo", cmd_zoo, help="list the reference architectures", examples="  edgebert zoo\n  edgebert zoo --json\n")

    p = add_command(
        sub, "export", cmd_export,
        help="export a model to ONNX (parity-checked; optionally INT8)",
        examples=(
            "  edgebert export tinybert-4 --out export/tinybert-4\n"
            "  edgebert export my_spec.json --out export/mine --int8\n"
            "  edgebert export runs/sst2/student --out export/student --int8 --json\n"
            "  edgebert export /path/to/bert-checkpoint --out export/bert\n"
        ),
    )
    p.add_argument("model", help="zoo name, spec .json file, saved edgebert model dir, or Hugging Face BERT dir")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: export/<model name>)")
    p.add_argument("--int8", action="store_true", help="also write model_int8.onnx (ORT dynamic quantization)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--graph-optimization", default="auto", choices=["auto", "none", "fusion"],
                   help="ORT transformer fusion: auto = the decision a latency table measured for this machine")

    p = add_command(
        sub, "bench", cmd_bench,
        help="time models against a baseline, interleaved in one window on this device",
        examples=(
            "  edgebert bench                      # every zoo model against bert-base\n"
            "  edgebert bench tinybert-4 efficientbert\n"
            "  edgebert bench tinybert-4 --baseline bert-base --int8 --report bench.md\n"
            "  edgebert bench export/student --seq-len 64 --threads 1 --json\n"
        ),
    )
    p.add_argument("models", nargs="*", help="zoo names, spec files, model dirs or export dirs (default: the whole zoo)")
    p.add_argument("--baseline", default="bert-base", help="reference model (default bert-base; 'none' for none)")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: physical cores)")
    p.add_argument("--int8", action="store_true", help="time the INT8 (dynamic quantization) exports")
    p.add_argument("--runs", type=int, default=40, help="timed runs per model (default 40)")
    p.add_argument("--windows", type=int, default=1, help="separate timing windows (default 1)")
    p.add_argument("--report", type=Path, default=None, help="also write a Markdown report here")


def cmd_zoo(args: argparse.Namespace) -> None:
    from edgebert import zoo

    rows = []
    for name in zoo.names():
        spec = zoo.get(name)
        rows.append({"name": name, "params": spec.param_count(), "layers": spec.num_layers, "hidden": spec.hidden,
                     "summary": spec.summary(), "gflops_seq128": spec.flops(128) / 1e9, "source": zoo.entry(name).source})

    def human(rows):
        lines = [f"{'name':<20} {'params':>8}  {'GFLOPs@128':>10}  arch"]
        lines += [f"{r['name']:<20} {r['params'] / 1e6:>7.2f}M  {r['gflops_seq128']:>10.2f}  {r['summary']}" for r in rows]
        return "\n".join(lines) + "\n(params: embeddings + encoder, no pooler or head)\n"

    emit(args, rows, human)


def cmd_export(args: argparse.Namespace) -> None:
    from edgebert.export import export_model
    from edgebert.hub import load_model

    loaded = load_model(args.model)
    out = args.out or Path("export") / loaded.name
    progress(args)(f"exporting {args.model} -> {out}")
    graph_opt = args.graph_optimization
    if graph_opt == "auto":  # what a latency table measured for this machine, else the default
        from edgebert.device.timing import default_threads
        from edgebert.latency.catalog import recorded_graph_optimization

        graph_opt, _ = recorded_graph_optimization(threads=default_threads(), precision="int8" if args.int8 else "fp32")
    manifest = export_model(loaded, out, int8=args.int8, opset=args.opset, graph_optimization=graph_opt)

    def human(m):
        s = f"wrote {m['onnx_path']} ({m['params'] / 1e6:.2f}M params); parity max |diff| {m['max_abs_diff']:.2e}"
        if "reference_max_abs_diff" in m:
            s += f", vs transformers BertModel {m['reference_max_abs_diff']:.2e}"
        if "int8_hidden_cosine" in m:
            s += f"; INT8 hidden-state cosine {m['int8_hidden_cosine']:.4f}"
            if "int8_label_agreement" in m:
                s += f", label agreement {m['int8_label_agreement']:.3f}"
        return s

    emit(args, manifest, human)


def cmd_bench(args: argparse.Namespace) -> None:
    from edgebert.bench import bench, markdown, write_report

    from edgebert import zoo

    baseline = None if args.baseline in ("none", "") else args.baseline
    models = args.models or [n for n in zoo.names() if n != baseline]
    result = bench(
        models, baseline=baseline, seq_len=args.seq_len, batch=args.batch, threads=args.threads,
        int8=args.int8, runs=args.runs, windows=args.windows, progress=progress(args),
    )
    if args.report:
        write_report(result, args.report)
    emit(args, result, markdown)
