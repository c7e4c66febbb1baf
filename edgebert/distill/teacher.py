"""Teachers: loading with the checks distillation needs, and their outputs cached on disk.

A teacher is any model reference `hub.load_model` resolves (a Hugging Face BERT
folder, a saved edgebert model such as `edgebert finetune-teacher` writes).
Distillation reads its logits on every training example and, for the warm-up
stage, its hidden states and attention on the warm-up sentences. Those are
computed once and kept in the content-keyed cache of `edgebert.data.cache`:

    $EDGEBERT_CACHE/teacher/<sha256 of the key>.npz     one entry per target:
      logits        (N, C)              float32
      hidden{k}     (total_tokens, Ht)  float16   hidden_states[k] of every real token (k = 0: embeddings),
                                                  rows aligned with Encoded.offsets (no padding stored)
      attention{k}  (sum_i nh*T_i^2,)   float16   layer k's attention probabilities, each example's
                                                  (nh, T_i, T_i) block flattened, back to back

keyed by the teacher's weights (sha256 of its state dict), the tokenized split
(`Encoded.key`: tokenizer, data, split, max_length) and the target's name. One
entry per target means a second student with another layer mapping reuses the
layers it shares. Sizes for all-MiniLM (H 384, 12 heads) on SST-2 sentences
(13.3 tokens, mean T^2 269): 10 KB per example per hidden layer, 6.5 KB per
attention layer; the default warm-up (20k sentences, embeddings + 3 mapped
layers) holds ~1.2 GB; logits of all 67k training examples ~0.5 MB.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from edgebert import data
from edgebert.data.tasks import Task
from edgebert.distill.losses import Needs, Targets
from edgebert.errors import EdgebertError
from edgebert.hub import LoadedModel, load_model
from edgebert.modeling import EdgeBert, EdgeBertForSequenceClassification, build, encoder_of

CACHE_KIND = "teacher"
# Bump when what an entry stores changes: old entries then miss.
OUTPUTS_VERSION = 1
FORWARD_BATCH = 64  # examples per teacher forward pass (sorted by length, so little padding)


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of a model's state dict (names, shapes, values): what its outputs depend on."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load_teacher(ref: str, task: Task) -> LoadedModel:
    """A teacher for distillation on `task`: it must carry a trained head of the task's size."""
    loaded = load_model(ref, num_labels=task.num_labels)
    if not (isinstance(loaded.model, EdgeBertForSequenceClassification) and loaded.trained_head):
        raise EdgebertError(f"teacher {ref} has no trained classification head for {task.name}; "
                            f"fine-tune it first: edgebert finetune-teacher --teacher {ref} --task {task.name} ...")
    n = loaded.model.config.num_labels
    if n != task.num_labels:
        raise EdgebertError(f"teacher {ref} has a {n}-output head; {task.name} needs {task.num_labels}")
    return loaded


def with_head(loaded: LoadedModel, num_labels: int, seed: int) -> tuple[EdgeBertForSequenceClassification, bool]:
    """(classifier, head_was_reset): the model with a head of `num_labels` outputs, the
    encoder's weights kept; a head of another size (or none) starts fresh."""
    model = loaded.model
    if isinstance(model, EdgeBertForSequenceClassification) and model.config.num_labels == num_labels:
        return model, not loaded.trained_head
    fresh = build(loaded.spec, num_labels=num_labels, seed=seed,
                  hidden_dropout_prob=model.config.hidden_dropout_prob,
                  attention_probs_dropout_prob=model.config.attention_probs_dropout_prob)
    encoder_of(fresh).load_state_dict(encoder_of(model).state_dict())
    return fresh, True


@dataclass
class TeacherOutputs:
    """The cached outputs of one teacher on one tokenized split; `targets(batch)` pads them like the batch."""

    encoded: data.Encoded
    logits: np.ndarray | None  # (N, C) float32
    hidden: dict[int, np.ndarray]  # hidden_states index -> (total_tokens, Ht) float16
    attention: dict[int, np.ndarray]  # teacher layer -> (sum nh*T_i^2,) float16
    heads: dict[int, int]  # teacher layer -> its head count
    hits: int = 0  # cache entries found
    misses: int = 0  # entries computed (0 = no teacher forward pass)
    _starts: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def attention_starts(self, layer: int) -> np.ndarray:
        """(N + 1,) where each example's attention block starts in attention[layer]."""
        if layer not in self._starts:
            self._starts[layer] = attention_starts(self.encoded.lengths, self.heads[layer])
        return self._starts[layer]

    def targets(self, batch: data.Batch) -> Targets:
        idx = batch.indices.numpy()
        mask = batch.attention_mask.bool()  # (B, T)
        logits = None if self.logits is None else torch.from_numpy(self.logits[idx])
        hidden = {}
        if self.hidden:
            rows = token_rows(self.encoded, idx, batch.input_ids.shape[1])  # (B, T)
            for k, arr in self.hidden.items():
                hidden[k] = torch.from_numpy(arr[rows].astype(np.float32)) * mask.unsqueeze(-1)  # (B, T, Ht)
        attention = {}
        B, T = batch.input_ids.shape
        for k, arr in self.attention.items():
            nh, starts = self.heads[k], self.attention_starts(k)
            out = np.zeros((B, nh, T, T), dtype=np.float32)
            for b, i in enumerate(idx):
                n = int(self.encoded.lengths[i])
                out[b, :, :n, :n] = arr[starts[i]:starts[i] + nh * n * n].reshape(nh, n, n)
            attention[k] = torch.from_numpy(out)  # (B, nh, T, T)
        return Targets(logits=logits, hidden=hidden, attention=attention)


def attention_starts(lengths: np.ndarray, heads: int) -> np.ndarray:
    lengths = lengths.astype(np.int64)
    return np.concatenate([[0], np.cumsum(heads * lengths**2)])


def token_rows(encoded: data.Encoded, idx: np.ndarray, width: int) -> np.ndarray:
    """(B, T) row of each (example, position) in the back-to-back token arrays; padding
    positions point at a valid row (masked out by the caller)."""
    rows = encoded.offsets[idx][:, None] + np.arange(width)[None, :]
    return np.minimum(rows, max(int(encoded.offsets[-1]) - 1, 0))


def teacher_outputs(model: EdgeBert, teacher_key: str, encoded: data.Encoded, need: Needs, *,
                    progress: bool = True) -> TeacherOutputs:
    """The teacher's `need`ed outputs on `encoded`, from the cache or from one forward pass over it."""
    heads = {k: layer.attention.heads for k, layer in enumerate(encoder_of(model).layers, start=1)}
    computed: dict[str, np.ndarray] = {}

    def compute(name: str) -> dict[str, np.ndarray]:
        if not computed:  # the first miss computes every target in one pass
            computed.update(_forward(model, encoded, need, heads, progress))
        return {"values": computed[name]}

    arrays, hits = {}, 0
    for name in need.names():
        key = {"version": OUTPUTS_VERSION, "teacher": teacher_key, "tokens": encoded.key, "target": name}
        entry, hit = data.cached_arrays(CACHE_KIND, key, lambda name=name: compute(name))
        arrays[name], hits = entry["values"], hits + hit
    return TeacherOutputs(
        encoded=encoded,
        logits=arrays.get("logits"),
        hidden={k: arrays[f"hidden{k}"] for k in need.hidden},
        attention={k: arrays[f"attention{k}"] for k in need.attention},
        heads=heads, hits=hits, misses=len(need.names()) - hits,
    )


@torch.no_grad()
def _forward(model: EdgeBert, encoded: data.Encoded, need: Needs, heads: dict[int, int],
             progress: bool) -> dict[str, np.ndarray]:
    model.eval()  # no dropout: targets are the teacher's function
    lengths = encoded.lengths.astype(np.int64)
    n_tok = int(lengths.sum())
    hidden_width = model.config.spec.hidden
    out: dict[str, np.ndarray] = {}
    if need.logits:
        out["logits"] = np.zeros((len(encoded), model.config.num_labels), dtype=np.float32)
    for k in need.hidden:
        out[f"hidden{k}"] = np.zeros((n_tok, hidden_width), dtype=np.float16)
    starts = {}
    for k in need.attention:
        starts[k] = attention_starts(lengths, heads[k])
        out[f"attention{k}"] = np.zeros(int(starts[k][-1]), dtype=np.float16)
    batches = data.iter_batches(encoded, FORWARD_BATCH, bucket=True)  # sorted by length: little padding
    for batch in tqdm(batches, desc=f"teacher outputs ({len(encoded)} examples)", unit="batch",
                      disable=not progress or None, leave=False):
        res = model(**batch.model_inputs(), output_hidden_states=bool(need.hidden),
                    output_attentions=bool(need.attention))
        idx = batch.indices.numpy()
        mask = batch.attention_mask.bool()  # (B, T)
        if need.logits:
            out["logits"][idx] = res.logits.float().numpy()
        if need.hidden:
            rows = token_rows(encoded, idx, mask.shape[1])[mask.numpy()]  # (valid tokens,) in (b, t) order
            for k in need.hidden:
                out[f"hidden{k}"][rows] = res.hidden_states[k][mask].numpy()  # (valid tokens, Ht)
        for k in need.attention:
            probs = res.attentions[k - 1].numpy()  # (B, nh, T, T)
            for b, i in enumerate(idx):
                n = int(lengths[i])
                out[f"attention{k}"][starts[k][i]:starts[k][i + 1]] = probs[b, :, :n, :n].reshape(-1)
    return out
