"""A model reference's ArchSpec, without PyTorch: zoo names, spec files, saved models,
export folders and Hugging Face BERT configs (hub.py loads the weights; the
predictor and the tables need only this)."""

from __future__ import annotations

from pathlib import Path

from edgebert import zoo
from edgebert.arch import ArchSpec, SpecError, load_spec_file
from edgebert.errors import EdgebertError
from edgebert.files import read_json


def resolve_spec(ref: str | Path) -> ArchSpec:
    """Just the ArchSpec of a model reference, without building or loading weights."""
    ref_s = str(ref)
    if zoo.is_zoo_name(ref_s):
        return zoo.get(ref_s)
    path = Path(ref_s)
    if path.is_file() and path.suffix == ".json":
        return load_spec_file(path)
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise EdgebertError(f"model directory {path} has no config.json")
        config = read_json(config_path)
        if config.get("model_type") == "edgebert":
            return ArchSpec.from_dict(config["arch"])
        if (path / "manifest.json").is_file():  # an export folder
            return ArchSpec.from_dict(read_json(path / "manifest.json", "export manifest")["spec"])
        return hf_bert_spec(config, str(path))
    if path.suffix == ".json" or "/" in ref_s or path.exists():
        raise EdgebertError(f"model not found: {ref_s} (expected a zoo name, a spec .json file or a model directory)")
    raise zoo_error(ref_s)


def zoo_error(name: str) -> EdgebertError:
    try:
        zoo.entry(name)
    except EdgebertError as e:
        return EdgebertError(f"{e} (or give a spec .json file or a model directory)")
    return EdgebertError(name)


def hf_bert_spec(config: dict, where: str) -> ArchSpec:
    """The ArchSpec of a transformers BertConfig dict, or a one-line refusal."""
    mt = config.get("model_type")
    if mt != "bert":
        raise EdgebertError(f"{where}: model_type {mt!r} cannot be expressed; edgebert loads BERT checkpoints (model_type 'bert')")
    act = config.get("hidden_act", "gelu")
    if act != "gelu":
        raise EdgebertError(f"{where}: hidden_act {act!r} cannot be expressed; edgebert's BERT FFN uses exact gelu")
    pos = config.get("position_embedding_type", "absolute")
    if pos != "absolute":
        raise EdgebertError(f"{where}: position_embedding_type {pos!r} cannot be expressed; only 'absolute'")
    if config.get("is_decoder") or config.get("add_cross_attention"):
        raise EdgebertError(f"{where}: decoder / cross-attention BERT cannot be expressed")
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    if hidden % heads:
        raise EdgebertError(f"{where}: hidden_size {hidden} is not divisible by {heads} heads")
    try:
        return ArchSpec.uniform(
            layers=config["num_hidden_layers"], hidden=hidden, heads=heads, inner=config["intermediate_size"],
            vocab_size=config["vocab_size"], max_positions=config.get("max_position_embeddings", 512),
            type_vocab_size=config.get("type_vocab_size", 2), layer_norm_eps=config.get("layer_norm_eps", 1e-12),
        )
    except SpecError as e:
        raise EdgebertError(f"{where}: cannot be expressed: {e}") from None
