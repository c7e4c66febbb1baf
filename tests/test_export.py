import json
from pathlib import Path

import numpy as np
import pytest

from edgebert import zoo
from edgebert.errors import EdgebertError
from edgebert.export import export_model
from edgebert.hub import load_model
from tests.conftest import shrink


def _spec_file(tmp_path: Path, name="tinybert-4") -> Path:
    p = tmp_path / "spec.json"
    p.write_text(shrink(zoo.get(name)).to_json())
    return p


def test_manifest_records_what_was_shipped(tmp_path):
    m = export_model(load_model(_spec_file(tmp_path)), tmp_path / "out", int8=True)
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved == json.loads(json.dumps(m))
    for key in ("source", "spec", "opset", "export_mode", "versions", "ort_session_options", "files", "onnx_path"):
        assert key in m
    assert m["onnx_path"].endswith("model_int8.onnx")
    assert len(m["files"]["fp32"]["sha256"]) == 64
    assert set(m["versions"]) >= {"onnx", "onnxruntime", "torch"}
    assert m["max_abs_diff"] <= 1e-4
    assert 0.9 < m["int8_hidden_cosine"] <= 1.0
    assert 16 not in m["files"]["fp32"]["parity"]["sequence_lengths"]  # not the traced length


def test_dynamic_axes(tmp_path):
    import onnxruntime as ort

    export_model(load_model(_spec_file(tmp_path)), tmp_path / "out")
    sess = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"))
    for b, t in ((1, 5), (4, 33)):
        feed = {"input_ids": np.ones((b, t), np.int64), "attention_mask": np.ones((b, t), np.int64),
                "token_type_ids": np.zeros((b, t), np.int64)}
        logits, hidden = sess.run(None, feed)
        assert logits.shape[0] == b and hidden.shape[:2] == (b, t)


def test_plain_bert_directory_matches_transformers_and_runs_in_optimum(teacher_dir, tmp_path):
    m = export_model(load_model(teacher_dir), tmp_path / "minilm")
    assert m["source_kind"] == "hf-bert"
    assert m["reference_max_abs_diff"] <= 1e-4
    assert m["parity_inputs"] == "sentences"
    assert (tmp_path / "minilm" / "vocab.txt").is_file()
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    ort_model = ORTModelForSequenceClassification.from_pretrained(tmp_path / "minilm", file_name="model.onnx")
    tok = AutoTokenizer.from_pretrained(tmp_path / "minilm")
    out = ort_model(**tok(["it works."], return_tensors="pt"))
    assert out.logits.shape == (1, 2)


def test_parity_failure_is_loud_and_writes_nothing(tmp_path, monkeypatch):
    import edgebert.export as ex

    loaded = load_model(_spec_file(tmp_path))
    real = ex._torch_outputs
    monkeypatch.setattr(ex, "_torch_outputs", lambda model, b: [o + 1e-2 for o in real(model, b)])
    out = tmp_path / "out"
    with pytest.raises(EdgebertError, match="parity failure"):
        export_model(loaded, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_failed_export_keeps_the_previous_folder(tmp_path, monkeypatch):
    import edgebert.export as ex

    loaded = load_model(_spec_file(tmp_path))
    out = tmp_path / "out"
    export_model(loaded, out)
    before = (out / "manifest.json").read_text()
    real = ex._torch_outputs
    monkeypatch.setattr(ex, "_torch_outputs", lambda model, b: [o + 1.0 for o in real(model, b)])
    with pytest.raises(EdgebertError):
        export_model(loaded, out)
    assert (out / "manifest.json").read_text() == before


@pytest.mark.parametrize(
    "config, fragment",
    [
        ({"model_type": "roberta"}, "model_type 'roberta' cannot be expressed"),
        ({"model_type": "bert", "hidden_act": "relu"}, "hidden_act 'relu' cannot be expressed"),
        ({"model_type": "bert", "position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key'"),
    ],
)
def test_inexpressible_checkpoints_are_refused(tmp_path, config, fragment):
    base = {"hidden_size": 64, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 128,
            "vocab_size": 100}
    (tmp_path / "config.json").write_text(json.dumps({**base, **config}))
    with pytest.raises(EdgebertError, match=fragment):
        load_model(tmp_path)


def test_missing_model_directory(tmp_path):
    with pytest.raises(EdgebertError, match="model not found"):
        load_model(tmp_path / "nope")
    with pytest.raises(EdgebertError, match="no config.json"):
        load_model(tmp_path)


@pytest.mark.parametrize("name", ["tinybert-4", "efficientbert"])  # plain GELU FFNs; the searched expressions
def test_fused_graphs_export_quantize_and_keep_parity(tmp_path, name):
    m = export_model(load_model(_spec_file(tmp_path, name)), tmp_path / "out", int8=True, graph_optimization="fusion")
    assert m["graph_optimization"] == "fusion"
    assert m["max_abs_diff"] <= 1e-4
    assert 0.9 < m["int8_hidden_cosine"] <= 1.0
