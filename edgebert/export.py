"""The one export path: PyTorch -> ONNX, graph optimization, INT8, parity on the shipped graph.

Whole models and the profiler's micro-models both go through `export_module`
(same opset, same torch.onnx.export mode, same graph-optimization decision), so
latency tables price the graphs that ship.

    manifest = export_model(load_model("tinybert-4"), Path("export/tinybert-4"), int8=True)

Writes `model.onnx` (fp32, dynamic batch and sequence axes), `model_int8.onnx`
with `int8=True`, tokenizer files when the source has them, `config.json`, and
`manifest.json` (source, spec, opset, export mode, versions, ORT session
options, sha256, parity figures). Parity is checked on the graph that ships
(after optimization) on real sentences, batched with padding, at sequence lengths
other than the export sample; a fp32 export whose outputs differ from PyTorch by
more than 1e-4 fails and leaves `out` untouched.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgebert.errors import EdgebertError
from edgebert.files import atomic_dir
from edgebert.hub import LoadedModel, copy_tokenizer
from edgebert.arch import ArchSpec
from edgebert.modeling import EdgeBertForSequenceClassification

OPSET = 17
# The TorchScript-based exporter: its graphs are the ones ORT's transformer
# optimizer recognises, and it needs no onnxscript.
EXPORT_MODE = "torchscript"
FP32_TOLERANCE = 1e-4
GRAPH_OPTIMIZATIONS = ("none", "fusion")
# ORT's offline BERT fusion (onnxruntime.transformers.optimizer) made bert-base
# *slower* on this machine (135 vs 119 ms, fp32, 2 threads); ORT still applies its
# built-in session-level fusions (GELU, LayerNorm, MatMul+Add) at load time.
# A latency table records the decision measured for its device; this is the
# default when no table says otherwise.
DEFAULT_GRAPH_OPTIMIZATION = "none"

# Real sentences for parity checks (SST-2-like movie review phrases of varied length).
PARITY_SENTENCES = (
    "a gripping, beautifully acted drama that never lets go.",
    "it's a mess.",
    "the director's fondness for long, lingering shots of empty rooms becomes tiresome well before the third act.",
    "funny, touching and smart.",
    "an utterly forgettable sequel that squanders a talented cast on jokes that land with a thud.",
    "not bad at all",
    "the plot holes are big enough to drive a truck through, but the chase scenes are thrilling.",
    "one of the year's best films, with a score that lingers long after the credits roll.",
    "i wanted to like it more than i did.",
    "a quiet, observant portrait of a family coming apart at the seams, told with remarkable restraint and warmth.",
    "dull.",
    "the dialogue sparkles and the performances are uniformly excellent.",
)
# The traced sample is this long; parity batches are padded to other lengths.
EXPORT_SAMPLE_SHAPE = (2, 16)


class _ExportWrapper(nn.Module):
    """Fixed input and output names for ONNX: logits (if a classifier) and last_hidden_state."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.classifier = isinstance(model, EdgeBertForSequenceClassification)

    def forward(self, input_ids, attention_mask, token_type_ids):
        if self.classifier:
            out = self.model(input_ids, attention_mask, token_type_ids, output_hidden_states=True)
            return out.logits, out.hidden_states[-1]
        return (self.model(input_ids, attention_mask, token_type_ids).last_hidden_state,)


INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def model_inputs(spec: ArchSpec, batch: int, seq_len: int) -> list:
    """How the harness feeds an exported model: random token ids, no padding, one segment —
    what a deployed classifier sees at this length."""
    from edgebert.device.timing import InputSpec

    if seq_len > spec.max_positions:
        raise EdgebertError(f"--seq-len {seq_len} exceeds the model's {spec.max_positions} positions")
    shape = [batch, seq_len]
    return [
        InputSpec("input_ids", shape, "int64", low=1, high=spec.vocab_size),
        InputSpec("attention_mask", shape, "int64", fill=1),
        InputSpec("token_type_ids", shape, "int64", fill=0),
    ]


def output_names(model: nn.Module) -> list[str]:
    return ["logits", "last_hidden_state"] if isinstance(model, EdgeBertForSequenceClassification) else ["last_hidden_state"]


def export_module(
    module: nn.Module,
    sample: tuple[torch.Tensor, ...],
    path: Path,
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    opset: int = OPSET,
) -> None:
    """torch.onnx.export with the project's one mode and opset (whole models and micro-models)."""
    module = module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            module,
            sample,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )


def optimize_graph(path: Path, decision: str, *, num_heads: int = 0, hidden: int = 0) -> None:
    """Apply the recorded graph-optimization decision to an exported file, in place.

    `hidden` is the attention width (heads x head size). ORT's fusion reads each
    layer's heads from the graph's reshapes and uses these only as a fallback; it
    asserts `hidden % num_heads == 0`, so anything else (an FFN-only graph, no
    attention) is passed as 0, 0: detect from the graph."""
    if decision not in GRAPH_OPTIMIZATIONS:
        raise EdgebertError(f"unknown graph optimization {decision!r}; allowed: {', '.join(GRAPH_OPTIMIZATIONS)}")
    if decision == "none":
        return
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    if num_heads <= 0 or hidden <= 0 or hidden % num_heads:
        num_heads, hidden = 0, 0
    # ORT's GELU pattern matchers crash on some MLP-language graphs (swish: x * sigmoid(x)
    # with a non-constant factor); such a graph is fused without them, else kept plain.
    # The fallback is per file: a whole model with one such layer loses GELU fusion in
    # every layer, while the table priced its other layers' micro-models fused — a
    # mismatch only when fusion is the table's decision (on this machine it is not).
    no_gelu = FusionOptions("bert")
    no_gelu.enable_gelu = no_gelu.enable_bias_gelu = False
    for options in (None, no_gelu):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt = optimize_model(str(path), model_type="bert", num_heads=num_heads, hidden_size=hidden,
                                     opt_level=1, optimization_options=options)
        except (AttributeError, AssertionError, ValueError, IndexError, TypeError):
            continue
        opt.save_model_to_file(str(path))
        return


def quantize_int8(src: Path, dst: Path) -> None:
    """ORT dynamic quantization: int8 weights, activations quantized per run."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a warning per non-float tensor it skips
    try:
        # DefaultTensorType: shape inference cannot type the outputs of ORT's fused
        # (com.microsoft) operators; they are float.
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parity_inputs(tokenizer_dir: Path | None, vocab_size: int) -> tuple[list[dict[str, np.ndarray]], str]:
    """Two padded batches of the parity sentences (lengths unlike the export sample)."""
    batches = []
    if tokenizer_dir is not None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        for chunk in (PARITY_SENTENCES[:6], PARITY_SENTENCES[6:]):
            enc = tok(list(chunk), padding=True, return_tensors="np", return_token_type_ids=True)
            batches.append({k: enc[k].astype(np.int64) for k in INPUT_NAMES})
        kind = "sentences"
    else:  # no tokenizer for this vocabulary: seeded random ids, still padded
        rng = np.random.default_rng(0)
        for b, t in ((6, 23), (6, 41)):
            ids = rng.integers(1, vocab_size, size=(b, t), dtype=np.int64)
            mask = np.ones_like(ids)
            for i in range(b):
                mask[i, t - 3 * i:] = 0
            batches.append({"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        kind = "random-ids"
    if any(b["input_ids"].shape[1] == EXPORT_SAMPLE_SHAPE[1] for b in batches):
        for b in batches:  # pad one more column so no parity batch has the traced length
            for k in INPUT_NAMES:
                b[k] = np.pad(b[k], ((0, 0), (0, 1)))
    return batches, kind


def _torch_outputs(model: nn.Module, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        out = _ExportWrapper(model)(*(torch.from_numpy(batch[k]) for k in INPUT_NAMES))
    return [o.numpy() for o in out]


def _masked(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return hidden[mask.astype(bool)]  # (valid tokens, H)


def check_parity(model: nn.Module, onnx_path: Path, batches: list[dict], *, int8: bool) -> dict[str, Any]:
    """Compare the ONNX file's outputs with PyTorch on padded batches (valid tokens only)."""
    from edgebert.device.timing import TimingPolicy, make_session

    session = make_session(onnx_path, TimingPolicy())
    names = [o.name for o in session.get_outputs()]
    max_diff, cosines, agree, total = 0.0, [], 0, 0
    for batch in batches:
        ref = dict(zip(names, _torch_outputs(model, batch)))
        got = dict(zip(names, session.run(names, batch)))
        mask = batch["attention_mask"]
        a, b = _masked(ref["last_hidden_state"], mask), _masked(got["last_hidden_state"], mask)
        max_diff = max(max_diff, float(np.abs(a - b).max()))
        cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
        cosines.extend(cos.tolist())
        if "logits" in ref:
            max_diff = max(max_diff, float(np.abs(ref["logits"] - got["logits"]).max()))
            if ref["logits"].shape[-1] > 1:
                agree += int((ref["logits"].argmax(-1) == got["logits"].argmax(-1)).sum())
                total += ref["logits"].shape[0]
    result: dict[str, Any] = {
        "max_abs_diff": max_diff,
        "hidden_cosine_mean": float(np.mean(cosines)),
        "hidden_cosine_min": float(np.min(cosines)),
        "sequence_lengths": [int(b["input_ids"].shape[1]) for b in batches],
        "examples": int(sum(b["input_ids"].shape[0] for b in batches)),
    }
    if total:
        result["label_agreement"] = agree / total
    if not int8 and max_diff > FP32_TOLERANCE:
        raise EdgebertError(
            f"parity failure: ONNX output differs from PyTorch by {max_diff:.3g} > {FP32_TOLERANCE:g}; nothing was written"
        )
    return result


def reference_diff(loaded: LoadedModel, onnx_path: Path, batches: list[dict]) -> float:
    """For a plain BERT directory: the shipped graph against transformers' own BertModel."""
    from transformers import BertModel

    from edgebert.device.timing import TimingPolicy, make_session

    ref_model = BertModel.from_pretrained(loaded.source).eval()
    session = make_session(onnx_path, TimingPolicy())
    worst = 0.0
    for batch in batches:
        with torch.no_grad():
            ref = ref_model(**{k: torch.from_numpy(v) for k, v in batch.items()}).last_hidden_state.numpy()
        got = session.run(["last_hidden_state"], batch)[0]
        m = batch["attention_mask"]
        worst = max(worst, float(np.abs(_masked(ref, m) - _masked(got, m)).max()))
    return worst


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "transformers": transformers.__version__,
    }


def export_model(
    loaded: LoadedModel,
    out: Path,
    *,
    int8: bool = False,
    opset: int = OPSET,
    graph_optimization: str = DEFAULT_GRAPH_OPTIMIZATION,
) -> dict[str, Any]:
    """Export, optimize, (quantize), check parity, and write the folder atomically; returns the manifest."""
    from edgebert.device.timing import TimingPolicy

    if not 7 <= opset <= 21:
        raise EdgebertError(f"--opset {opset} is not supported; use 14..21 (default {OPSET})")
    if graph_optimization not in GRAPH_OPTIMIZATIONS:
        raise EdgebertError(f"unknown graph optimization {graph_optimization!r}; allowed: {', '.join(GRAPH_OPTIMIZATIONS)}")
    model, spec = loaded.model.eval(), loaded.spec
    t0 = time.perf_counter()
    tokenizer_dir = loaded.tokenizer_dir or _default_tokenizer_for(spec.vocab_size)
    batches, parity_kind = parity_inputs(tokenizer_dir, spec.vocab_size)
    outs = output_names(model)
    with atomic_dir(out) as tmp:
        fp32 = tmp / "model.onnx"
        sample = tuple(torch.ones(EXPORT_SAMPLE_SHAPE, dtype=torch.long) for _ in INPUT_NAMES)
        axes = {n: {0: "batch", 1: "sequence"} for n in INPUT_NAMES}
        axes.update({n: ({0: "batch"} if n == "logits" else {0: "batch", 1: "sequence"}) for n in outs})
        try:
            export_module(_ExportWrapper(model), sample, fp32, input_names=INPUT_NAMES, output_names=outs,
                          dynamic_axes=axes, opset=opset)
        except Exception as e:  # the exporter's errors are long; keep the first line
            raise EdgebertError(f"ONNX export failed at opset {opset}: {str(e).splitlines()[0]}") from None
        first = spec.layers[0]
        optimize_graph(fp32, graph_optimization, num_heads=first.heads, hidden=first.heads * first.head_size)
        files = {"fp32": _file_entry(fp32, check_parity(model, fp32, batches, int8=False))}
        if loaded.kind == "hf-bert":
            files["fp32"]["parity"]["reference_max_abs_diff"] = reference_diff(loaded, fp32, batches)
        if int8:
            q = tmp / "model_int8.onnx"
            quantize_int8(fp32, q)
            files["int8"] = _file_entry(q, check_parity(model, q, batches, int8=True))
        copied = copy_tokenizer(tokenizer_dir, tmp)
        _write_config(loaded, tmp)
        shipped = files["int8" if int8 else "fp32"]
        manifest = {
            "source": loaded.source,
            "source_kind": loaded.kind,
            "name": loaded.name,
            "spec": spec.to_dict(),
            "params": sum(p.numel() for p in model.parameters()),
            "trained_head": loaded.trained_head,
            "opset": opset,
            "export_mode": EXPORT_MODE,
            "graph_optimization": graph_optimization,
            "precision": "int8" if int8 else "fp32",
            "inputs": INPUT_NAMES,
            "outputs": outs,
            "dynamic_axes": {"batch": 0, "sequence": 1},
            "ort_session_options": TimingPolicy().session_options(),
            "versions": versions(),
            "parity_inputs": parity_kind,
            "tokenizer": bool(copied),
            "files": files,
            "onnx_path": str(out / Path(shipped["file"]).name),
            "max_abs_diff": files["fp32"]["parity"]["max_abs_diff"],
            "seconds": round(time.perf_counter() - t0, 2),
        }
        if "reference_max_abs_diff" in files["fp32"]["parity"]:
            manifest["reference_max_abs_diff"] = files["fp32"]["parity"]["reference_max_abs_diff"]
        if int8:
            manifest["int8_hidden_cosine"] = files["int8"]["parity"]["hidden_cosine_mean"]
            if loaded.trained_head and "label_agreement" in files["int8"]["parity"]:
                manifest["int8_label_agreement"] = files["int8"]["parity"]["label_agreement"]
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _file_entry(path: Path, parity: dict) -> dict[str, Any]:
    return {"file": path.name, "sha256": sha256(path), "size_mb": path.stat().st_size / 2**20, "parity": parity}


def _default_tokenizer_for(vocab_size: int) -> Path | None:
    from edgebert.hub import default_tokenizer_dir

    d = default_tokenizer_dir()
    return d if d is not None and vocab_size == 30522 else None


def _write_config(loaded: LoadedModel, tmp: Path) -> None:
    """config.json beside the ONNX file: the source's own for a plain BERT (so optimum's
    ORTModel classes load the folder), else the edgebert config."""
    if loaded.kind == "hf-bert":
        cfg = json.loads((Path(loaded.source) / "config.json").read_text())
        cfg.setdefault("num_labels", loaded.model.config.num_labels)
        if not loaded.trained_head:
            cfg["id2label"] = {str(i): f"LABEL_{i}" for i in range(loaded.model.config.num_labels)}
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    else:
        loaded.model.config.to_json_file(str(tmp / "config.json"))


# --- the export cache (bench, profiler calibration and validation share it) ----------------------


def _source_fingerprint(ref: str) -> str:
    """What identifies a model's weights: the spec for random zoo/spec models, file stamps for folders."""
    p = Path(ref)
    h = hashlib.sha256(ref.encode())
    if p.is_dir():
        for f in sorted(p.glob("*.safetensors")) + sorted(p.glob("*.bin")) + [p / "config.json"]:
            if f.is_file():
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    elif p.is_file():
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def cached_export(ref: str, *, int8: bool, graph_optimization: str = DEFAULT_GRAPH_OPTIMIZATION,
                  spec: ArchSpec | None = None) -> tuple[dict, Path]:
    """(manifest, onnx path) for `ref`: an export folder as is, else an export cached by what
    the model is (a second bench or profile costs no export). With `spec`, ref is only a name
    and the model is `spec` with random weights."""
    from edgebert.device.canary import cache_dir
    from edgebert.files import prune_cache, touch
    from edgebert.hub import LoadedModel, load_model

    precision = "int8" if int8 else "fp32"
    p = Path(ref)
    if spec is None and p.is_dir() and (p / "manifest.json").is_file():
        manifest = json.loads((p / "manifest.json").read_text())
        if precision not in manifest["files"]:
            raise EdgebertError(f"{p} has no {precision} model; re-export it{' with --int8' if int8 else ''}")
        return manifest, p / manifest["files"][precision]["file"]
    ident = spec.key() if spec is not None else _source_fingerprint(ref)
    out = cache_dir() / "exports" / f"{p.name}-{ident}-{graph_optimization}-{precision}"
    if not (out / "manifest.json").is_file():
        if spec is not None:
            from edgebert.modeling import build

            loaded = LoadedModel(build(spec, num_labels=2, seed=0), spec, ref, "spec", None, False)
        else:
            loaded = load_model(ref)
        export_model(loaded, out, int8=int8, graph_optimization=graph_optimization)
        prune_cache(out.parent)
    else:
        touch(out)
    manifest = json.loads((out / "manifest.json").read_text())
    return manifest, out / manifest["files"][precision]["file"]
