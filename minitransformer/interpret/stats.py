"""What each head looks at: statistics of its attention over a batch, and a role for each head.

All statistics read the attention weights ``A[l, b, h, i, j]`` (row i = query, column j = key:
how much token i reads from token j; each real row sums to 1) and average over the *real*
query rows of every sequence (padding queries are skipped). For one head:

=================  ===========================================================================
statistic          per query row i, then averaged over real rows
=================  ===========================================================================
entropy            ``-sum_j A_ij log A_ij`` (nats; Clark et al. 2019; 0 log 0 = 0). Uniform
                   attention over n keys gives ``log n``: see ``uniform_entropy``.
distance           ``sum_j A_ij |i - j|``: mean attention distance in tokens (Vig & Belinkov
                   2019, Eq. 6, with ``|i - j|`` for a bidirectional encoder).
confidence         ``max_j A_ij``, the largest weight (Voita et al. 2019).
self / previous /  ``A_ii``, ``A_i,i-1``, ``A_i,i+1``: attention on the token itself, the one
next               before it and the one after it (Clark et al. 2019's offset selectors).
special            ``sum_j A_ij [token j is special]``: [CLS], [SEP], ... given by id or
                   position.
punctuation        ``sum_j A_ij [token j is punctuation]``, given the punctuation ids.
padding            ``sum_j A_ij [token j is padding]`` by *id*: 0 when the padding mask was
                   passed to the model; large when it was forgotten (a common bug).
top_offset_share   the share of rows whose argmax key is at the head's most common relative
                   offset ``j - i`` (stored in ``top_offset``); Voita et al. call a head
                   *positional* when it is at least 0.9.
=================  ===========================================================================

:func:`head_roles` turns these numbers into a label per head, with the evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from minitransformer.interpret.checks import check_indices
from minitransformer.trace import Trace

#: Characters that make a token "punctuation" for :func:`punctuation_ids`.
PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def attention_weights(trace: Trace) -> np.ndarray:
    """Every layer's attention weights stacked: ndarray of shape (L, B, H, S, S).

    Reads ``blocks.{l}.attn.weights`` for every block; raises ``KeyError`` naming the first
    missing one (a trace recorded with ``keep=`` must keep ``"*.attn.weights"``).
    """
    names = [f"blocks.{l}.attn.weights" for l in range(trace.config.n_layers)]
    missing = [n for n in names if n not in trace]
    if missing:
        raise KeyError(f"the trace did not record {missing[0]!r}: keep '*.attn.weights'")
    return np.stack([trace[n] for n in names])


def query_mask(trace: Trace) -> np.ndarray:
    """Which query rows are real tokens: bool ndarray of shape (B, S), from ``blocks.0.attn.mask``.

    A real token may always attend to itself, so query i is real when ``mask[b, i, i]`` is
    True (this also holds under a causal mask).
    """
    mask = trace["blocks.0.attn.mask"]  # (B, 1, 1, S) or (B, 1, S, S)
    S = mask.shape[-1]
    full = np.broadcast_to(mask[:, 0], (mask.shape[0], S, S))
    return np.diagonal(full, axis1=1, axis2=2).copy()  # (B, S)


def punctuation_ids(vocabulary: Sequence[str]) -> list[int]:
    """The ids of tokens made only of punctuation characters (``"."``, ``","``, ``"##!"`` ...).

    ``vocabulary[i]`` is the token of id i; a WordPiece ``##`` prefix is ignored.
    """
    ids = []
    for i, token in enumerate(vocabulary):
        text = token[2:] if token.startswith("##") and len(token) > 2 else token
        if text and all(c in PUNCTUATION for c in text):
            ids.append(i)
    return ids


@dataclass(frozen=True)
class HeadStatistics:
    """Per-head attention statistics, each an ndarray of shape (n_layers, n_heads).

    See the module docstring for the formula of each field. ``uniform_entropy`` is the mean
    of ``log n_i`` over the same rows (n_i = number of keys row i may see): the entropy of a
    head that attends uniformly, for comparison.
    """

    entropy: np.ndarray
    uniform_entropy: np.ndarray
    distance: np.ndarray
    confidence: np.ndarray
    self: np.ndarray
    previous: np.ndarray
    next: np.ndarray
    special: np.ndarray
    punctuation: np.ndarray
    padding: np.ndarray
    top_offset: np.ndarray
    top_offset_share: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(n_layers, n_heads)."""
        return (self.entropy.shape[0], self.entropy.shape[1])

    def as_dict(self) -> dict[str, np.ndarray]:
        """Every statistic by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_weights(weights: Any) -> np.ndarray:
    A = np.asarray(weights, dtype=np.float64)
    if A.ndim == 4:  # one layer (B, H, S, S)
        A = A[None]
    if A.ndim != 5 or A.shape[-1] != A.shape[-2]:
        raise ValueError(
            f"weights must have shape (L, B, H, S, S) or (B, H, S, S), got {np.shape(weights)}"
        )
    if not np.isfinite(A).all():
        raise ValueError("weights must be finite attention weights, got nan or inf")
    return A


def _check_rows(name: str, value: Any, shape: tuple[int, int]) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim == 1:
        a = a[None]
    if a.shape != shape:
        raise ValueError(f"{name} must have shape (B, S) = {shape}, got {np.shape(value)}")
    return a


def key_indicator(
    token_ids: np.ndarray, ids: Iterable[int], positions: Iterable[int] = ()
) -> np.ndarray:
    """Float (B, S): 1 where a token's id is in ``ids`` or its position in ``positions``."""
    marked = np.isin(token_ids, list(ids))
    for p in positions:
        marked[:, p] = True
    return marked.astype(np.float64)


def head_statistics(
    weights: Any,
    token_ids: Any = None,
    mask: Any = None,
    *,
    special_ids: Iterable[int] = (),
    special_positions: Iterable[int] = (),
    punctuation: Iterable[int] = (),
    pad_id: int | None = None,
    causal: bool = False,
) -> HeadStatistics:
    """Statistics of every head's attention over a batch (formulas in the module docstring).

    Parameters
    ----------
    weights : ndarray of shape (L, B, H, S, S) or (B, H, S, S)
        Attention weights, e.g. :func:`attention_weights` of a trace.
    token_ids : int array of shape (B, S), optional
        Needed for ``special_ids``, ``punctuation`` and ``pad_id``.
    mask : bool or 0/1 array of shape (B, S), optional
        1 for real tokens. Only real query rows are averaged. None: every row.
    special_ids : ids of special tokens ([CLS], [SEP], ...)
    special_positions : positions of special tokens (e.g. ``(0,)`` for a first [CLS])
    punctuation : ids of punctuation tokens (see :func:`punctuation_ids`)
    pad_id : id of the padding token, for the ``padding`` share
    causal : bool
        The weights come from a causal model (``config.causal``): query i sees only the real
        keys j <= i, so the entropy of uniform attention is the mean of ``log n_i`` over those.

    Returns
    -------
    HeadStatistics
        Each field of shape (L, H).
    """
    A = _check_weights(weights)
    L, B, H, S, _ = A.shape
    rows = np.ones((B, S)) if mask is None else _check_rows("mask", mask, (B, S)).astype(float)
    n_rows = rows.sum()
    if n_rows == 0:
        raise ValueError("mask has no real token: there is no query row to average over")
    ids = None if token_ids is None else _check_rows("token_ids", token_ids, (B, S))
    special_ids, punctuation = list(special_ids), list(punctuation)
    special_positions = check_indices(
        list(special_positions), S, "special_positions", f" (the {S} positions)"
    ).tolist()
    if ids is None and (special_ids or punctuation or pad_id is not None):
        raise ValueError("special_ids, punctuation and pad_id need token_ids")

    def mean_over_rows(per_row: np.ndarray) -> np.ndarray:  # (L, B, H, S) -> (L, H)
        return np.einsum("lbhs,bs->lh", per_row, rows) / n_rows

    def share_on(keys: np.ndarray) -> np.ndarray:  # keys (B, S) 0/1 -> (L, H)
        return mean_over_rows(np.einsum("lbhij,bj->lbhi", A, keys))

    log_A = np.log(np.where(A > 0, A, 1.0))  # 0 log 0 = 0
    entropy = mean_over_rows(-(A * log_A).sum(-1))
    # (B, S): the real keys each query may see -- all of them, or those up to i when causal
    n_keys = (
        np.cumsum(rows, axis=1) if causal else np.broadcast_to(rows.sum(axis=1)[:, None], (B, S))
    )
    uniform = (np.log(np.maximum(n_keys, 1)) * rows).sum() / n_rows
    i = np.arange(S)
    distance = mean_over_rows((A * np.abs(i[:, None] - i[None, :])).sum(-1))  # |i - j|
    confidence = mean_over_rows(A.max(-1))
    diagonal = np.diagonal(A, offset=0, axis1=-2, axis2=-1)  # (L, B, H, S)
    previous = np.zeros_like(diagonal)
    previous[..., 1:] = np.diagonal(A, offset=-1, axis1=-2, axis2=-1)  # A[i, i-1]
    after = np.zeros_like(diagonal)
    after[..., :-1] = np.diagonal(A, offset=1, axis1=-2, axis2=-1)  # A[i, i+1]
    known = ids if ids is not None else np.zeros((B, S), dtype=np.int64)  # ids, when needed
    special = key_indicator(known, special_ids, special_positions)
    punct = key_indicator(known, punctuation)
    pad = key_indicator(known, [] if pad_id is None else [pad_id])

    offsets = A.argmax(-1) - i  # (L, B, H, S): j - i of each row's largest weight
    top_offset = np.zeros((L, H), dtype=np.int64)
    top_share = np.zeros((L, H))
    real = rows.astype(bool)
    for l in range(L):
        for h in range(H):
            values, counts = np.unique(offsets[l, :, h][real], return_counts=True)
            top_offset[l, h] = values[counts.argmax()]
            top_share[l, h] = counts.max() / n_rows
    return HeadStatistics(
        entropy=entropy,
        uniform_entropy=np.full((L, H), uniform),
        distance=distance,
        confidence=confidence,
        self=mean_over_rows(diagonal),
        previous=mean_over_rows(previous),
        next=mean_over_rows(after),
        special=share_on(special),
        punctuation=share_on(punct),
        padding=share_on(pad),
        top_offset=top_offset,
        top_offset_share=top_share,
    )


# ------------------------------------------------------------------------------ roles


@dataclass(frozen=True)
class RoleThresholds:
    """When :func:`head_roles` gives a head a role (defaults follow Clark et al. 2019 and
    Voita et al. 2019).

    Attributes
    ----------
    offset : float
        previous-token / next-token / self when that share is above this (Clark: 0.5).
    special : float
        special-token sink / punctuation when that share is above this (Clark: 0.6).
    padding : float
        attends to padding (a bug: the mask was not passed) above this share.
    broad : float
        broad when entropy / uniform_entropy is above this. Clark et al. use 3.8 nats for
        128-token BERT inputs; a ratio works for any length.
    positional : float
        positional (fixed offset) when top_offset_share is at least this (Voita: 0.9).
    sharp : float
        sharp (reads one key per query, chosen by content or by a position that varies with
        the query) when the mean max weight is above this (Voita et al.'s positional heads
        had confidence above 0.8).
    """

    offset: float = 0.5
    special: float = 0.6
    padding: float = 0.5
    broad: float = 0.9
    positional: float = 0.9
    sharp: float = 0.8


@dataclass(frozen=True)
class HeadRole:
    """The role of one head and the number that earned it."""

    layer: int
    head: int
    role: str
    evidence: str


def head_roles(
    stats: HeadStatistics, thresholds: RoleThresholds = RoleThresholds()
) -> list[HeadRole]:
    """Label every head by what most of its attention goes to.

    The first rule that fires wins, in this order: ``padding`` (a bug), ``special-token
    sink``, ``punctuation``, ``previous-token``, ``next-token``, ``self`` (among these share
    rules, the largest share above its threshold wins); ``positional (offset k)``; ``sharp``
    (a high max weight on keys that move with the query, as in a reversal head); ``broad``;
    a head matching none is ``mixed``. Thresholds: :class:`RoleThresholds`.

    Returns
    -------
    list of HeadRole, layer by layer, head by head.
    """
    t = thresholds
    share_rules = [
        ("padding", "padding", t.padding),
        ("special-token sink", "special", t.special),
        ("punctuation", "punctuation", t.special),
        ("previous-token", "previous", t.offset),
        ("next-token", "next", t.offset),
        ("self", "self", t.offset),
    ]
    L, H = stats.shape
    roles = []
    for l in range(L):
        for h in range(H):
            fired = [
                (getattr(stats, field)[l, h], role, field)
                for role, field, limit in share_rules
                if getattr(stats, field)[l, h] > limit
            ]
            ratio = stats.entropy[l, h] / max(stats.uniform_entropy[l, h], 1e-12)
            if fired:
                share, role, field = max(fired, key=lambda f: f[0])
                evidence = f"{share:.2f} of attention on {field}"
            elif stats.top_offset_share[l, h] >= t.positional:
                k = int(stats.top_offset[l, h])
                role = f"positional (offset {k:+d})"
                evidence = f"argmax at offset {k:+d} in {stats.top_offset_share[l, h]:.0%} of rows"
            elif stats.confidence[l, h] > t.sharp:
                role = "sharp"
                evidence = (
                    f"max weight {stats.confidence[l, h]:.2f} on keys at varying offsets "
                    f"(distance {stats.distance[l, h]:.1f})"
                )
            elif ratio > t.broad:
                role = "broad"
                evidence = (
                    f"entropy {stats.entropy[l, h]:.2f} = {ratio:.0%} of uniform "
                    f"{stats.uniform_entropy[l, h]:.2f} nats"
                )
            else:
                role = "mixed"
                evidence = (
                    f"entropy {stats.entropy[l, h]:.2f} nats, max weight "
                    f"{stats.confidence[l, h]:.2f}, distance {stats.distance[l, h]:.1f}"
                )
            roles.append(HeadRole(l, h, role, evidence))
    return roles


def roles_table(roles: Sequence[HeadRole]) -> str:
    """The roles as a printable table: layer, head, role, evidence."""
    lines = [f"{'layer':>5}  {'head':>4}  {'role':<22}  evidence", "-" * 72]
    for r in roles:
        lines.append(f"{r.layer:>5}  {r.head:>4}  {r.role:<22}  {r.evidence}")
    return "\n".join(lines)
