"""Toy tasks for a bidirectional encoder, each with the attention an exact solution would use.

Every task is a deterministic generator of (token ids, padding mask, targets): the same seed
gives the same data. Where a simple algorithm solves the task by *reading one specific
position*, the task also returns that algorithm's attention as a 0/1 **target matrix**
``T[b, i, j] = 1`` where query ``i`` should read key ``j`` (in the spirit of RASP, Weiss et al.
2021, whose ``select`` writes such matrices). :func:`pattern_score` then measures how much of a
trained head's attention lands there.

Two kinds of task, and the lesson they make together:

* **crisp** -- the answer must be copied from one position chosen by position or content, so
  a trained head *has* to look there: ``reverse``, ``pointer``, ``shift``. Expect pattern
  scores near 1.
* **diffuse** -- a bag of tokens (near-uniform attention) plus the feed-forward layer is
  enough: ``histogram``, ``sort``, ``brackets``. They reach full accuracy with attention that
  looks nothing like the textbook algorithm; a high accuracy does not mean the heads do what
  the RASP program does. Their T is given for comparison only.
* ``twin`` sits in between: it has two solutions -- attend to the twin, or *avoid* it and
  notice which position is missing from the average -- and which one training finds depends on
  the seed. The classroom case for "attention is not explanation" (Jain & Wallace 2019).

The shipped models (:mod:`minitransformer.toy_models`, seed 0 unless noted), measured on 512
held-out examples; "pattern" is the best head's :func:`pattern_score` against T:

=========  ===============  ======  ========  =======  ===================================
task       layers x heads   steps   accuracy  pattern  what the attention does
=========  ===============  ======  ========  =======  ===================================
reverse    1 x 1            600     1.000     0.995    the anti-diagonal, crisp
pointer    1 x 1            600     1.000     0.993    the index token reads position k
shift      1 x 1            800     1.000     0.993    the diagonal ``offset`` below
twin       1 x 1            1500    1.000     0.034    seed 0: *avoids* the twin
twin       1 x 1            1500    1.000     0.910    seed 4: *attends* to the twin
histogram  1 x 1            3000    1.000     0.491    diffuse: about half on same tokens
sort       2 x 2            2500    1.000     0.436    diffuse: no head reads the k-th
brackets   2 x 2            2500    1.000     0.303    diffuse: counts depth instead
=========  ===============  ======  ========  =======  ===================================

Token id 0 is always padding (``PAD``). Targets equal to ``IGNORE_INDEX`` (-100) mark
positions with nothing to predict; the loss and the accuracy skip them.

>>> task = get_task("reverse")
>>> batch = task.generate(2, seed=0)
>>> batch.token_ids.shape, batch.targets.shape, batch.attention_target.shape
((2, 8), (2, 8), (2, 8, 8))
>>> bool((batch.targets[0] == batch.token_ids[0, ::-1]).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.heads import IGNORE_INDEX, accuracy
from minitransformer.trace import Trace
from minitransformer.validation import as_array, check_int

PAD = 0


@dataclass(frozen=True)
class Batch:
    """A batch of examples of a task.

    Attributes
    ----------
    token_ids : int64 ndarray of shape (B, S)
    mask : bool ndarray of shape (B, S)
        True for real tokens, False for padding.
    targets : int64 ndarray of shape (B, S)
        The class to predict at each position, or ``IGNORE_INDEX`` where there is none.
    attention_target : float ndarray of shape (B, S, S) or None
        ``T[b, i, j] = 1`` where the exact algorithm's query ``i`` reads key ``j``; rows of
        queries without an expected pattern are all 0. None for tasks without one.
    """

    token_ids: np.ndarray
    mask: np.ndarray
    targets: np.ndarray
    attention_target: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.token_ids)

    def select(self, index: Any) -> Batch:
        """The examples at ``index`` (an int array, a slice or a bool array over B)."""
        T = self.attention_target
        return Batch(
            self.token_ids[index],
            self.mask[index],
            self.targets[index],
            None if T is None else T[index],
        )


@dataclass(frozen=True)
class TrainSettings:
    """How the shipped checkpoint of a task was trained (see :func:`training.train_task`)."""

    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.0


class Task:
    """A toy task: a seeded generator, a metric, and (where one exists) the expected attention.

    Subclasses set the class attributes and implement :meth:`_generate`.

    Attributes
    ----------
    name : str
    kind : {"crisp", "diffuse", "seed-dependent"}
        What attention to expect from a trained model (see the module docstring).
    vocab_size : int
        Token ids are in ``[0, vocab_size)``; 0 is padding.
    n_classes : int
        Targets are in ``[0, n_classes)``.
    max_len : int
        Longest sequence generated.
    metric : str
        What :meth:`score` measures.
    config : EncoderConfig
        The encoder the shipped checkpoint uses.
    settings : TrainSettings
        How the shipped checkpoint was trained.
    """

    name: str = ""
    kind: str = "crisp"
    vocab_size: int = 0
    n_classes: int = 0
    max_len: int = 0
    metric: str = "accuracy over positions with a target"
    config: EncoderConfig = EncoderConfig()
    settings: TrainSettings = TrainSettings()

    def generate(self, n: int, seed: int | np.random.Generator = 0) -> Batch:
        """``n`` examples, the same for the same seed.

        Parameters
        ----------
        n : int
            Number of examples.
        seed : int or numpy.random.Generator
            An int gives a fresh generator (reproducible); a generator is drawn from (for a
            stream of training batches).
        """
        n = check_int("n", n, 1)
        if isinstance(seed, np.random.Generator):
            return self._generate(n, seed)
        return self._generate(n, np.random.default_rng(check_int("seed", seed, 0)))

    def _generate(self, n: int, rng: np.random.Generator) -> Batch:
        raise NotImplementedError

    def score(self, logits: np.ndarray, batch: Batch) -> float:
        """The task's metric: the fraction of positions with a target predicted right."""
        return accuracy(logits, batch.targets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, kind={self.kind!r})"


def _one_hot_rows(reads: np.ndarray, seq_len: int) -> np.ndarray:
    """T (B, S, S) with ``T[b, i, reads[b, i]] = 1``; rows where ``reads < 0`` stay 0."""
    B, S = reads.shape
    T = np.zeros((B, S, seq_len))
    b, i = np.nonzero(reads >= 0)
    T[b, i, reads[b, i]] = 1.0
    return T


# ------------------------------------------------------------------------- crisp tasks


class Reverse(Task):
    """Output the sequence reversed: position ``i`` predicts the token at ``L - 1 - i``.

    RASP: ``select(indices, length - indices - 1, ==)``; T is the anti-diagonal. Sequences
    have a fixed length L = 8 over tokens 1..11 (a fixed length keeps "the mirror position" a
    function of the position alone).
    """

    name, kind, length = "reverse", "crisp", 8
    vocab_size, n_classes, max_len = 12, 12, 8
    config = EncoderConfig(
        vocab_size=12, d_model=32, n_heads=1, n_layers=1, d_ff=64, max_len=8, positional="learned"
    )
    settings = TrainSettings(steps=600, lr=5e-3)

    def _generate(self, n: int, rng: np.random.Generator) -> Batch:
        L = self.length
        ids = rng.integers(1, self.vocab_size, size=(n, L))
        mirror = np.broadcast_to(L - 1 - np.arange(L), (n, L))
        return Batch(ids, np.ones((n, L), bool), ids[:, ::-1].copy(), _one_hot_rows(mirror, L))


class Pointer(Task):
    """Pointer lookup: six values, then an index token ``@k``; predict the k-th value.

    Ids 1..9 are values, ids 10..15 are the index tokens ``@0``..``@5``. Only the last
    position (the index token) has a target; its query must read position k, so T has one 1
    in the last row, at column k.
    """

    name, kind, n_values, first_index_id = "pointer", "crisp", 6, 10
    vocab_size, n_classes, max_len = 16, 16, 7
    config = EncoderConfig(
        vocab_size=16, d_model=32, n_heads=1, n_layers=1, d_ff=64, max_len=7, positional="learned"
    )
    settings = TrainSettings(steps=600, lr=5e-3)

    def _generate(self, n: int, rng: np.random.Generator) -> Batch:
        values = rng.integers(1, self.first_index_id, size=(n, self.n_values))
        k = rng.integers(0, self.n_values, size=n)
        ids = np.concatenate([values, (self.first_index_id + k)[:, None]], axis=1)  # (n, 7)
        targets = np.full(ids.shape, IGNORE_INDEX)
        targets[:, -1] = values[np.arange(n), k]
        reads = np.full(ids.shape, -1)
        reads[:, -1] = k
        return Batch(ids, np.ones(ids.shape, bool), targets, _one_hot_rows(reads, ids.shape[1]))


class Shift(Task):
    """Copy with an offset: position ``i`` predicts the token at ``i - offset``.

    Variable lengths 5..12, right-padded with 0. Positions ``i < offset`` and padding have no
    target. RASP: ``select(indices, indices - offset, ==)``; T is the sub-diagonal ``offset``
    below the main one.
    """

    name, kind, offset, min_len = "shift", "crisp", 2, 5
    vocab_size, n_classes, max_len = 12, 12, 12
    config = EncoderConfig(
        vocab_size=12, d_model=32, n_heads=1, n_layers=1, d_ff=64, max_len=12, positional="learned"
    )
    settings = TrainSettings(steps=800, lr=5e-3)

    def _generate(self, n: int, rng: np.random.Generator) -> Batch:
        S, k = self.max_len, self.offset
        lengths = rng.integers(self.min_len, S + 1, size=n)
        mask = np.arange(S)[None, :] < lengths[:, None]  # (n, S)
        ids = np.where(mask, rng.integers(1, self.vocab_size, size=(n, S)), PAD)
        targets = np.full((n, S), IGNORE_INDEX)
        targets[:, k:] = ids[:, :-k]
        targets[~mask] = IGNORE_INDEX
        reads = np.where(mask & (np.arange(S) >= k), np.arange(S) - k, -1)
        return Batch(ids, mask, targets, _one_hot_rows(reads, S))


# ------------------------------------------------------------------ seed-dependent task


class Twin(Task):
    """Each of four tokens appears twice; every position predicts where its twin is.

    Length 8, four distinct tokens from 1..15, shuffled. The target at ``i`` is the position
    ``j != i`` with the same token (class 0..7), and T marks it.

    Two solutions reach 100%: a head can **attend to the twin** (query ``i`` finds the key
    with the same token and reads its position), or **avoid the twin** -- attend to every
    *other* position, whose average position-signal lacks exactly the twin's, and let the
    feed-forward layer read which one is missing. With the shipped model (one layer, one
    head) ``seed=0`` finds the *avoid* solution and ``seed=4`` the *attend* solution
    (:data:`TWIN_SEEDS`): same accuracy, opposite attention maps.
    """

    name, kind, n_pairs = "twin", "seed-dependent", 4
    vocab_size, n_classes, max_len = 16, 8, 8
    config = EncoderConfig(
        vocab_size=16, d_model=32, n_heads=1, n_layers=1, d_ff=64, max_len=8, positional="learned"
    )
    settings = TrainSettings(steps=1500, lr=3e-3)

    def _generate(self, n: int, rng: np.random.Generator) -> Batch:
        L = 2 * self.n_pairs
        ids = np.empty((n, L), dtype=np.int64)
        twin = np.empty((n, L), dtype=np.int64)
        for b in range(n):
            tokens = rng.choice(np.arange(1, self.vocab_size), size=self.n_pairs, replace=False)
            order = rng.permutation(L)  # the two copies of pair p go to order[2p], order[2p+1]
            ids[b, order] = np.repeat(tokens, 2)
            twin[b, order[0::2]], twin[b, order[1::2]] = order[1::2], order[0::2]
        return Batch(ids, np.ones((n, L), bool), twin, _one_hot_rows(twin, L))


# ------------------------------------------------------------------------ diffuse tasks


class Histogram(Task):
    """Every token predicts how often it occurs in its sequence.

    A ``BOS`` token (id 1) comes first; then 3..10 tokens from ids 2..5, right-padded. RASP:
    ``selector_width(select(tokens, tokens, ==))``: attend to the same tokens (and BOS), and
    the weight BOS gets, ``1 / (count + 1)``, gives the count. T marks the same-token
    positions. Trained models solve it with near-uniform attention instead.
    """

    name, kind, bos, n_symbols, min_len = "histogram", "diffuse", 1, 4, 3
    vocab_size, max_len = 6, 11
    n_classes = 11  # counts 1..10
    config = EncoderConfig(
        vocab_size=6, d_model=32, n_heads=1, n_layers=1, d_ff=128, max_len=11, positional="learned"
    )
    settings = TrainSettings(steps=3000, lr=5e-3)

    def _generate(self, n: int, rng: np.random.Generator) -> Batch:
        S = self.max_len
        lengths = rng.integers(self.min_len, S, size=n) + 1  # BOS + 3..10 tokens
        mask = np.arange(S)[None, :] < lengths[:, None]
        ids = rng.integers(self.bos + 1, self.bos + 1 + self.n_symbols, size=(n, S))
        ids[:, 0] = self.bos
        ids = np.where(mask, ids, PAD)
        same = (ids[:, :, None] == ids[:, None, :]) & mask[:, :, None] & mask[:, None, :]
        same[:, 0, :] = same[:, :, 0] = False  # BOS has no count
        targets = np.where(mask, same.sum(axis=2), IGNORE_INDEX)
        targets[:, 0] = IGNORE_INDEX
        return Batch(ids, mask, targets, same.astype(float))


class Sort(Task):
    """Output the tokens sorted: position ``i`` predicts the i-th smallest token.

    Six distinct tokens from 1..15. RASP: rank each token with
    ``selector_width(select(tokens, tokens, <))``, then read the token whose rank is ``i``; T
    marks that position. Trained models do not use such a map.
    """

    name, kind, length = "sort", "diffuse", 6
    vocab_size, n_classes, max_len = 16, 16, 6
    config = EncoderConfig(
        vocab_size=16, d_model=32, n_heads=2, n_layers=2, d_ff=128, max_len=6, positional="learned"
    )
    settings = TrainSettings(steps=2500, lr=3e-3)

    def _generate(self, n: int, rng: np.random.Generator) -> Batch:
        L = self.length
        ids = np.stack(
            [rng.choice(np.arange(1, self.vocab_size), size=L, replace=False) for _ in range(n)]
        )
        order = np.argsort(ids, axis=1)  # order[b, i] = position of the i-th smallest
        targets = np.take_along_axis(ids, order, axis=1)
        return Batch(ids, np.ones((n, L), bool), targets, _one_hot_rows(order, L))


class Brackets(Task):
    """Bracket matching: each ``)`` predicts the position of the ``(`` it closes.

    Balanced sequences of length 10 over ``(`` (id 1) and ``)`` (id 2); ``(`` positions have
    no target. The textbook algorithm reads the matching bracket (T marks it); trained models
    count depth with diffuse attention instead.
    """

    name, kind, length, open_id, close_id = "brackets", "diffuse", 10, 1, 2
    vocab_size, n_classes, max_len = 3, 10, 10
    config = EncoderConfig(
        vocab_size=3, d_model=32, n_heads=2, n_layers=2, d_ff=128, max_len=10, positional="learned"
    )
    settings = TrainSettings(steps=2500, lr=3e-3)

    def _generate(self, n: int, rng: np.random.Generator) -> Batch:
        L = self.length
        ids = np.empty((n, L), dtype=np.int64)
        targets = np.full((n, L), IGNORE_INDEX)
        for b in range(n):
            ids[b], targets[b] = _random_brackets(L // 2, rng, self.open_id, self.close_id)
        reads = np.where(targets >= 0, targets, -1)
        return Batch(ids, np.ones((n, L), bool), targets, _one_hot_rows(reads, L))


def _random_brackets(
    pairs: int, rng: np.random.Generator, open_id: int, close_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """A random balanced bracket string and, at each ``)``, the position of its ``(``."""
    ids: list[int] = []
    match: list[int] = []
    stack: list[int] = []  # positions of the brackets still open
    opened = 0
    for position in range(2 * pairs):
        can_open, can_close = opened < pairs, len(stack) > 0
        if can_open and (not can_close or rng.random() < 0.5):
            ids.append(open_id)
            match.append(IGNORE_INDEX)
            stack.append(position)
            opened += 1
        else:
            ids.append(close_id)
            match.append(stack.pop())
    return np.array(ids), np.array(match)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (Reverse(), Pointer(), Shift(), Twin(), Histogram(), Sort(), Brackets())
}
TWIN_SEEDS = {"avoid": 0, "attend": 4}  # training seeds giving each twin solution


def get_task(name: str) -> Task:
    """The task called ``name``, one of :data:`TASKS`."""
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {list(TASKS)}")
    return TASKS[name]


# --------------------------------------------------------------------- pattern scores


def pattern_score(A: np.ndarray, T: np.ndarray) -> float:
    """How much attention lands where the target matrix says: ``mean_i sum_j A[i,j] T[i,j]``.

    ``T`` is 0/1 (1 where the exact algorithm's query ``i`` reads key ``j``), so
    ``sum_j A[i,j] T[i,j]`` is the share of query ``i``'s attention on the keys it should read:
    1 for a perfect head, ``(number of 1s in the row) / S`` for uniform attention. The mean
    runs over the query rows that *have* an expected pattern (rows of T that are not all 0),
    over every sequence of the batch.

    Parameters
    ----------
    A : ndarray of shape (..., S, S)
        Attention weights of one head (rows sum to 1), e.g. ``trace["weights", 0][:, h]``.
    T : ndarray of shape (..., S, S)
        The target matrix, e.g. ``batch.attention_target``; broadcast against ``A``.

    Returns
    -------
    float in [0, 1]
    """
    A, T = as_array(A, "A"), as_array(T, "T")
    if A.ndim < 2 or T.ndim < 2 or A.shape[-2:] != T.shape[-2:]:
        raise ValueError(f"A and T must end in the same (S, S), got {A.shape} and {T.shape}")
    A, T = np.broadcast_arrays(A, T)
    rows = T.sum(axis=-1) > 0
    if not rows.any():
        raise ValueError("T has no row with an expected pattern (all zeros)")
    return float((A * T).sum(axis=-1)[rows].mean())


def head_scores(trace: Trace, T: np.ndarray) -> np.ndarray:
    """:func:`pattern_score` of every head: ndarray of shape (n_layers, n_heads).

    Parameters
    ----------
    trace : Trace
        Of a forward pass on the batch whose target matrix is ``T``.
    T : ndarray of shape (B, S, S)
    """
    scores = []
    for l in range(trace.n_layers):
        weights = trace[f"blocks.{l}.attn.weights"]  # (B, H, S, S)
        scores.append([pattern_score(weights[:, h], T) for h in range(weights.shape[1])])
    return np.array(scores)


@dataclass(frozen=True)
class BestHead:
    """The head whose attention matches the target matrix best."""

    layer: int
    head: int
    score: float
    scores: np.ndarray = field(repr=False)  # (n_layers, n_heads), every head's score


def best_head(trace: Trace, T: np.ndarray) -> BestHead:
    """The (layer, head) with the highest :func:`pattern_score` against ``T``."""
    scores = head_scores(trace, T)
    layer, head = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return BestHead(int(layer), int(head), float(scores[layer, head]), scores)
