"""A held-out part of the *training* data, for scoring candidates during search.

GLUE's dev sets score the final models; the search must not tune on them. For
most tasks a seeded random split of the training rows is enough.

SST-2 is different: its training set is a phrase bank. Of its 67k rows most are
phrases cut from other rows' sentences ("the movie" from "the movie is a
charming journey"). A random split would score a candidate on phrases whose
whole sentence it trained on. So for such tasks the held-out part takes whole
sentences only (rows that are no sub-phrase of another row), and the training
part loses every row that is a sub-phrase of a held-out sentence.

"Sub-phrase" means a run of whole words after whitespace normalisation. Rather
than scanning pairs of rows (O(n^2) substring searches), each whole sentence's
word runs (all of them: SST-2 sentences are short, 1.7M runs in all) are looked
up in a hash set of the rows' texts, longest sentences first.
"""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np

from edgebert.data.readers import TaskData
from edgebert.errors import EdgebertError

_WORD = re.compile(r"\S+")


def heldout_split(data: TaskData, fraction: float = 0.1, seed: int = 0) -> tuple[TaskData, TaskData]:
    """(train_part, heldout_part) of a training split.

    fraction: share of the candidates that are held out: whole sentences for a
    phrase-bank task (Task.rows_are_subphrases, i.e. SST-2), rows otherwise.
    """
    if not 0.0 < fraction < 1.0:
        raise EdgebertError(f"held-out fraction must lie strictly between 0 and 1, got {fraction!r}")
    if data.task.rows_are_subphrases and data.texts_b is None:
        train_rows, heldout_rows = _phrase_bank_split(data.texts_a, fraction, seed)
    else:
        train_rows, heldout_rows = _random_split(len(data), fraction, seed)
    if len(train_rows) == 0 or len(heldout_rows) == 0:
        raise EdgebertError(f"{data.source}: {len(data)} rows are too few to hold out a fraction of {fraction:g}")
    tag = f"heldout:{fraction!r}:{seed}"
    return data.select(train_rows, f"{tag}:train"), data.select(heldout_rows, f"{tag}:heldout")


def _random_split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    held = int(round(fraction * count))
    return np.sort(order[held:]), np.sort(order[:held])


def normalise(text: str) -> str:
    """Words joined by single spaces: the form in which sub-phrases are compared."""
    return " ".join(text.split())


def subphrases(text: str) -> list[str]:
    """Every run of whole words in a normalised text, the text itself included."""
    spans = [match.span() for match in _WORD.finditer(text)]
    return [text[start:end] for first, (start, _) in enumerate(spans) for _, end in spans[first:]]


def whole_sentences(texts: Iterable[str]) -> list[str]:
    """The distinct normalised texts that are no sub-phrase of another text, longest first."""
    known = {normalise(text) for text in texts} - {""}
    covered: set[str] = set()
    sentences = []
    for text in sorted(known, key=lambda t: (-t.count(" "), t)):
        # Longest first: a text is only covered by a longer one, which was seen before
        # it; a covered text's own sub-phrases were found in whatever covers it.
        if text in covered:
            continue
        sentences.append(text)
        covered.update(_known_subphrases(text, known))
    return sentences


def _known_subphrases(text: str, known: set[str]) -> Iterable[str]:
    # Looking runs up is cheaper than storing them all.
    return filter(known.__contains__, subphrases(text))


def _phrase_bank_split(texts: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    normalised = [normalise(text) for text in texts]
    sentences = whole_sentences(normalised)
    picked = np.random.default_rng(seed).permutation(len(sentences))[: int(round(fraction * len(sentences)))]
    heldout = {sentences[i] for i in picked}
    known = set(normalised)
    banned: set[str] = set()
    for sentence in heldout:
        banned.update(_known_subphrases(sentence, known))
    # Duplicate rows of a held-out sentence: the first is held out, the rest are dropped.
    first_row: dict[str, int] = {}
    for row, text in enumerate(normalised):
        if text in heldout:
            first_row.setdefault(text, row)
    train_rows = [row for row, text in enumerate(normalised) if text not in banned]
    return np.array(train_rows, dtype=np.int64), np.array(sorted(first_row.values()), dtype=np.int64)
