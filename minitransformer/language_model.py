"""A character-level language model: the same encoder with ``causal=True``, predicting the next
character of a play.

A *decoder* (GPT, Radford et al. 2018) is the encoder of this package with one change: the
causal mask, so that position ``i`` reads only positions ``0 .. i`` and can be trained to
predict the character at ``i + 1`` -- every position of a window at once. Nothing else is new:
the head that turns hidden states into next-character logits is the per-token
:class:`~minitransformer.heads.Classifier` (the *unembedding*), the loss is the cross-entropy,
training is :func:`~minitransformer.training.train`, and a window of text is a
:class:`~minitransformer.tasks.Batch` whose targets are its inputs shifted by one::

    text:     F i r s t   C i t i z e n
    inputs:   F i r s t   C i t i z e
    targets:  i r s t   C i t i z e n

The text is ``minitransformer/data/tiny_shakespeare.txt``: 79,929 characters of *Coriolanus*
(public domain; see the README beside it).

**Induction heads need a reason to copy.** Trained on the play alone, a two-layer model learns
a previous-token head in layer 0 but no induction head (Olsson et al. 2022): in 3000 steps on
72,000 characters, copying from earlier in the window does not pay enough for this small model
to find it. With ``repeat_fraction=0.5``
half of the training windows are a passage said twice (its first 32 characters, then the same
again), and a head of layer 1 learns to read the character *after* the previous occurrence of
the current one. Measured after 3000 steps (``train_char_lm(3000, repeat_fraction=...)``,
seed 0): the held-out loss on windows of the last tenth of the play, and, on 32 passages of 32
held-out characters each said twice (:func:`repeated_passages`), the loss of the first and of
the second saying and the best head's :func:`offset_score` (previous token: offset 1;
induction: offset 31 over the second saying)::

    repeat_fraction  held-out  first saying  second saying  previous token  induction
    0.0              1.69      1.68          1.84           0.98            0.00
    0.5              1.81      1.71          0.22           0.97            0.71

Without repeats the second saying is no easier than the first; with them it is read off the
first. The shipped model (:func:`load_char_lm`) is the second one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from minitransformer.checkpoint import load_checkpoint, save_checkpoint
from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.tasks import Batch, Task, TrainSettings
from minitransformer.training import History, train
from minitransformer.validation import as_array, check_int, check_number

DATA_DIR = Path(__file__).parent / "data"
TEXTS = {"shakespeare": "tiny_shakespeare.txt"}
CHAR_LM_PATH = Path(__file__).parent / "checkpoints" / "char_lm_shakespeare.npz"
VAL_FRACTION = 0.1  # the last tenth of the text is held out


def load_text(name: str = "shakespeare") -> str:
    """A text shipped with the package (see ``minitransformer/data/README.md``).

    Parameters
    ----------
    name : str
        A key of :data:`TEXTS`.
    """
    if name not in TEXTS:
        raise ValueError(f"no shipped text named {name!r}; available: {sorted(TEXTS)}")
    return (DATA_DIR / TEXTS[name]).read_text(encoding="ascii")


def split_text(text: str, val_fraction: float = VAL_FRACTION) -> tuple[str, str]:
    """The text cut in two: the first ``1 - val_fraction`` for training, the rest held out."""
    val_fraction = check_number(
        "val_fraction", val_fraction, 0.0, 1.0, open_min=True, open_max=True
    )
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


class CharVocab:
    """The characters of a text, each with an id: the tokenizer of a character-level model.

    Parameters
    ----------
    chars : str or sequence of str
        The distinct characters, in id order (each one character long).

    Examples
    --------
    >>> vocab = CharVocab.from_text("to be or not to be")
    >>> vocab.chars
    (' ', 'b', 'e', 'n', 'o', 'r', 't')
    >>> vocab.encode("be").tolist(), vocab.decode([6, 4])
    ([1, 2], 'to')
    """

    def __init__(self, chars: Any):
        chars = tuple(chars)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad or not chars:
            raise ValueError(f"chars must be distinct single characters, got {bad or 'none'}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct, got repeated characters")
        self.chars = chars
        self.ids = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """Every character of ``text``, sorted (so the ids do not depend on the order seen)."""
        if not isinstance(text, str) or not text:
            raise ValueError("text must be a non-empty str")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters)"

    def encode(self, text: str) -> np.ndarray:
        """The ids of the characters of ``text``: an int64 array of shape (len(text),)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        unknown = sorted(set(text) - set(self.ids))
        if unknown:
            raise ValueError(
                f"text holds characters that are not in the vocabulary: {unknown} (the "
                f"vocabulary has {len(self)}: {''.join(self.chars)!r})"
            )
        return np.array([self.ids[c] for c in text], dtype=np.int64)

    def decode(self, ids: Any) -> str:
        """The text of a sequence of ids (a list or a 1-D int array)."""
        array = as_array(ids, "ids")
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"ids must be a 1-D sequence of ints, got {array.dtype} {array.shape}")
        if array.size and (array.min() < 0 or array.max() >= len(self)):
            raise ValueError(f"ids must be in [0, {len(self)}), got {array.min()}..{array.max()}")
        return "".join(self.chars[i] for i in array)


class NextCharacter(Task):
    """Windows of a text, each to be continued one character at every position.

    ``generate(n, seed)`` draws ``n`` windows of ``seq_len + 1`` characters at random places;
    ``token_ids`` are the first ``seq_len``, ``targets`` the last ``seq_len`` (the same shifted
    by one). With ``repeat_fraction`` > 0 that share of the windows is a passage said twice:
    its first ``seq_len // 2`` characters, then the same again.

    Parameters
    ----------
    text : str
    vocab : CharVocab
        Must hold every character of ``text``.
    seq_len : int
    repeat_fraction : float in [0, 1]
    """

    name = "next_character"
    kind = "language model"
    metric = "next-character accuracy"

    def __init__(
        self, text: str, vocab: CharVocab, seq_len: int = 64, repeat_fraction: float = 0.0
    ):
        self.seq_len = check_int("seq_len", seq_len, 2)
        if len(text) < seq_len + 1:
            raise ValueError(
                f"text has {len(text)} characters, fewer than seq_len + 1 = {seq_len + 1}"
            )
        self.ids = vocab.encode(text)
        self.vocab = vocab
        self.repeat_fraction = check_number("repeat_fraction", repeat_fraction, 0.0, 1.0)
        self.vocab_size = self.n_classes = len(vocab)
        self.max_len = self.seq_len
        self.config = char_lm_config(len(vocab), self.seq_len)
        self.settings = TrainSettings(steps=3000, batch_size=32, lr=3e-3, warmup_steps=100)

    def _generate(self, n: int, rng: np.random.Generator) -> Batch:
        S = self.seq_len
        starts = rng.integers(0, len(self.ids) - S, size=n)  # a window needs S + 1 characters
        windows = self.ids[starts[:, None] + np.arange(S + 1)]  # (n, S + 1)
        said_twice = rng.random(n) < self.repeat_fraction
        half = S // 2
        passage = windows[said_twice, :half]  # (r, S/2)
        windows[said_twice] = np.concatenate([passage, passage, passage], axis=1)[:, : S + 1]
        return Batch(windows[:, :-1], np.ones((n, S), dtype=bool), windows[:, 1:])


def char_lm_config(vocab_size: int, seq_len: int = 64, dtype: str = "float32") -> EncoderConfig:
    """The decoder of notebook 13: 2 layers of 4 heads, d_model 64, pre-norm (as GPT-2),
    learned positions, and the causal mask."""
    return EncoderConfig(
        vocab_size=vocab_size,
        d_model=64,
        n_heads=4,
        n_layers=2,
        d_ff=256,
        max_len=seq_len,
        positional="learned",
        norm="pre",
        activation="relu",
        causal=True,
        dtype=dtype,
    )


@dataclass
class CharLM:
    """A trained character-level language model: the decoder, its unembedding, its vocabulary.

    Attributes
    ----------
    model : Encoder
        With ``config.causal = True``.
    head : Classifier
        Per-token logits over the vocabulary (``pooling="token"``).
    vocab : CharVocab
    history : History or None
        Of the training run (None for a loaded model).
    """

    model: Encoder
    head: Classifier
    vocab: CharVocab
    history: History | None = None


def train_char_lm(
    steps: int = 3000,
    *,
    text: str = "shakespeare",
    seq_len: int = 64,
    repeat_fraction: float = 0.0,
    seed: int = 0,
    eval_every: int = 100,
    progress: bool = False,
) -> CharLM:
    """Train the decoder of :func:`char_lm_config` to continue a shipped text.

    AdamW with a peak learning rate of 3e-3 (100 warm-up steps, or a tenth of ``steps``, then a
    cosine decay), batches of 32 windows, gradients clipped to norm 1, one BLAS thread; the
    held-out loss on 128 windows of the last tenth of the text every ``eval_every`` steps (at
    0.06 s a step on one core, 300 steps take about 20 s).

    Parameters
    ----------
    steps : int
    text : str
        A key of :data:`TEXTS`.
    seq_len : int
        Length of the training windows (and ``max_len`` of the model).
    repeat_fraction : float
        Share of the training windows that are a passage said twice (see
        :class:`NextCharacter`). The held-out windows are plain text.
    seed : int
        Seeds the parameters (``seed``, head ``seed + 1``) and the batches.
    eval_every : int
    progress : bool
        Show a progress bar.
    """
    full = load_text(text)
    vocab = CharVocab.from_text(full)
    train_text, val_text = split_text(full)
    task = NextCharacter(train_text, vocab, seq_len, repeat_fraction)
    val = NextCharacter(val_text, vocab, seq_len).generate(128, seed=1)
    model = Encoder(task.config, seed=seed)
    head = Classifier(task.config.d_model, len(vocab), seed=seed + 1)
    history = train(
        model,
        head,
        task,
        steps=steps,
        batch_size=task.settings.batch_size,
        lr=task.settings.lr,
        warmup_steps=min(task.settings.warmup_steps, steps // 10),
        val_data=val,
        eval_every=eval_every,
        seed=seed,
        progress=progress,
        desc="char LM",
    )
    return CharLM(model, head, vocab, history)


def save_char_lm(lm: CharLM, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Save a :class:`CharLM` as a checkpoint whose metadata holds the vocabulary."""
    return save_checkpoint(
        path, lm.model, lm.head, {**(metadata or {}), "chars": "".join(lm.vocab.chars)}
    )


def load_char_lm(path: str | Path = CHAR_LM_PATH) -> CharLM:
    """The shipped character-level model of *Coriolanus* (or one saved by :func:`save_char_lm`).

    The shipped one was trained by ``train_char_lm(3000, repeat_fraction=0.5)`` (see the
    module docstring for what that changes); its checkpoint's metadata records how.
    """
    checkpoint = load_checkpoint(path)
    chars = checkpoint.metadata.get("chars")
    if checkpoint.classifier is None or not isinstance(chars, str):
        raise ValueError(f"{path} is not a character-level model (no head or no 'chars' metadata)")
    if not checkpoint.model.config.causal:
        raise ValueError(f"{path} holds a model without the causal mask: not a language model")
    return CharLM(checkpoint.model, checkpoint.classifier, CharVocab(chars))


def repeated_passages(
    vocab: CharVocab, text: str, n: int, length: int, seed: int = 0
) -> np.ndarray:
    """``n`` passages of ``length`` characters drawn from ``text``, each said twice.

    Returns
    -------
    int64 ndarray of shape (n, 2 * length): ``ids[:, length:] == ids[:, :length]``.
    """
    n, length = check_int("n", n, 1), check_int("length", length, 1)
    ids = vocab.encode(text)
    if len(ids) < length:
        raise ValueError(f"text has {len(ids)} characters, fewer than length = {length}")
    starts = np.random.default_rng(check_int("seed", seed, 0)).integers(0, len(ids) - length + 1, n)
    passages = ids[starts[:, None] + np.arange(length)]  # (n, length)
    return np.concatenate([passages, passages], axis=1)


def offset_score(weights: np.ndarray, offset: int, queries: slice = slice(None)) -> np.ndarray:
    """The mean attention each head puts ``offset`` keys back: query ``i`` on key ``i - offset``.

    ``offset = 1`` measures a previous-token head; on a passage of length ``n`` said twice,
    ``offset = n - 1`` over the queries of the second saying (``queries=slice(n, None)``)
    measures an induction head: query ``i`` reading the character that followed the previous
    occurrence of its own.

    Parameters
    ----------
    weights : ndarray of shape (..., S, S)
        Attention patterns, e.g. one layer's (B, H, S, S).
    offset : int
        0 < offset < S.
    queries : slice
        The queries averaged over (those with ``i - offset < 0`` are always left out).

    Returns
    -------
    ndarray of shape (...) without the last two axes, e.g. (B, H): average it over B for one
    score per head.
    """
    w = as_array(weights, "weights")
    S = w.shape[-1]
    if w.ndim < 2 or w.shape[-2] != S:
        raise ValueError(f"weights must have shape (..., S, S), got {w.shape}")
    offset = check_int("offset", offset, 1, S - 1)
    rows = np.arange(S)[queries]
    rows = rows[rows >= offset]
    if rows.size == 0:
        raise ValueError(f"no query in {queries} has a key {offset} positions back (S = {S})")
    return w[..., rows, rows - offset].mean(axis=-1)


def perplexity(loss: float) -> float:
    """``exp(loss)``: the number of equally likely characters the model is as unsure as."""
    return math.exp(check_number("loss", loss, 0.0))
