"""Debugging attention: a report that flags the heads worth a second look.

:func:`diagnose` runs a model on a batch of inputs (and optionally on held-out inputs) and
flags each head by five rules. Every number is an average over the *real* query rows
(``A[l, b, h, i, :]``, row i = query i reading keys j); the thresholds are the fields of
:class:`DiagnosticThresholds`.

===========  ==================================================================================
flag         rule
===========  ==================================================================================
padding      ``sum_j A_ij [j is padding] > padding``: the head reads padding -- the padding mask
             was not passed (padding = ``mask == 0`` or ``token_ids == pad_id``).
sink         ``sum_j A_ij [j is a sink] > sink``: most attention goes to [CLS] / [SEP] / the
             first token (``sink_ids``, ``sink_positions``), a "no-op" head (Clark et al. 2019;
             Xiao et al. 2023's attention sinks).
uniform      ``mean_i H(A_i) / mean_i log n_i > uniform``: entropy close to that of uniform
             attention over the n_i real keys -- the head averages and reads nothing specific.
duplicate    Jensen-Shannon distance to another head ``< duplicate`` (mean over rows of
             ``sqrt(JS)``, :func:`~minitransformer.interpret.similarity.head_distances`): two
             heads attend alike, one of them is redundant.
overfit      the head attends differently on the (training) inputs than on held-out inputs.
             With attention targets (``targets=(T_inputs, T_held_out)``): the pattern-score
             drop ``score(inputs) - score(held out) > pattern_drop``. Without: the JS distance
             between the head's *average* patterns on the two sets, minus the same distance
             between random splits of the pooled inputs of the same sizes (the sampling noise:
             averages of few inputs differ by chance), ``> overfit``.
===========  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from minitransformer.encoder import Encoder
from minitransformer.interpret.similarity import head_distances, head_names, js_divergence
from minitransformer.interpret.stats import attention_weights, head_statistics
from minitransformer.tasks import head_scores
from minitransformer.validation import as_mask, as_token_ids

#: The flags, in the order a head's colour is chosen by (the first that applies).
FLAGS = ("padding", "sink", "duplicate", "uniform", "overfit")


@dataclass(frozen=True)
class DiagnosticThresholds:
    """When :func:`diagnose` flags a head (rules in the module docstring).

    Attributes
    ----------
    padding : float
        Share of attention on padding above which a head is flagged ("most": 0.5).
    sink : float
        Share on sink tokens above which a head is flagged ("most": 0.5).
    uniform : float
        Entropy / entropy of uniform attention above which a head is near-uniform (0.95:
        within 5% of ``log n``).
    duplicate : float
        JS distance (sqrt nats, at most ``sqrt(log 2) = 0.83``) below which two heads are
        duplicates. 0.1 corresponds to a JS divergence of 0.01 nats.
    overfit : float
        Excess JS distance between the average patterns on inputs and held-out inputs,
        beyond random splits, above which a head is flagged.
    pattern_drop : float
        Pattern-score drop from inputs to held-out inputs above which a head is flagged
        (when attention targets are given).
    """

    padding: float = 0.5
    sink: float = 0.5
    uniform: float = 0.95
    duplicate: float = 0.1
    overfit: float = 0.05
    pattern_drop: float = 0.05


@dataclass(frozen=True)
class Flag:
    """One finding about one head: the rule, the measured value, and the threshold."""

    layer: int
    head: int
    kind: str  # one of FLAGS
    value: float
    threshold: float
    evidence: str


@dataclass(frozen=True)
class Report:
    """The per-head numbers of :func:`diagnose` and the flags they raise.

    Attributes
    ----------
    flags : tuple of Flag
        Layer by layer, head by head, in the order of :data:`FLAGS`.
    padding, sink, uniformity : ndarray of shape (L, H)
        Share on padding, share on sinks, entropy / uniform entropy.
    nearest : ndarray of shape (L, H)
        JS distance to the most similar other head (inf for a model with one head).
    overfit : ndarray of shape (L, H) or None
        The overfitting evidence (pattern-score drop, or excess JS distance); None without
        held-out inputs.
    overfit_measure : str
        ``"pattern drop"``, ``"excess JS distance"`` or ``""``.
    thresholds : DiagnosticThresholds
    n_inputs, n_held_out : int
    """

    flags: tuple[Flag, ...]
    padding: np.ndarray
    sink: np.ndarray
    uniformity: np.ndarray
    nearest: np.ndarray
    overfit: np.ndarray | None
    overfit_measure: str
    thresholds: DiagnosticThresholds
    n_inputs: int
    n_held_out: int

    @property
    def shape(self) -> tuple[int, int]:
        """(n_layers, n_heads)."""
        return (self.padding.shape[0], self.padding.shape[1])

    def flags_of(self, layer: int, head: int) -> list[str]:
        """The kinds of flag raised for one head, in the order of :data:`FLAGS`."""
        return [f.kind for f in self.flags if (f.layer, f.head) == (layer, head)]

    def table(self) -> str:
        """The flags as a printable table: layer, head, flag, evidence, threshold."""
        L, H = self.shape
        held = f", {self.n_held_out} held-out" if self.n_held_out else ", no held-out inputs"
        lines = [
            f"attention diagnostics: {L} layers x {H} heads, {self.n_inputs} inputs{held}",
            f"{'layer':>5}  {'head':>4}  {'flag':<10} {'evidence':<52} threshold",
            "-" * 86,
        ]
        for f in self.flags:
            lines.append(f"{f.layer:>5}  {f.head:>4}  {f.kind:<10} {f.evidence:<52} {_limit(f)}")
        flagged = {(f.layer, f.head) for f in self.flags}
        lines.append(f"{L * H - len(flagged)} of {L * H} heads without a flag")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _limit(flag: Flag) -> str:
    below = flag.kind == "duplicate"
    return f"{'<' if below else '>'} {flag.threshold:.2f}"


def _run(
    model: Encoder, token_ids: Any, mask: Any, pad_id: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """ids (B, S), real (B, S) bool, weights (L, B, H, S, S), trace."""
    ids = as_token_ids(token_ids, model.config)
    if mask is not None:
        real = as_mask(mask, ids.shape)
    elif pad_id is not None:
        real = ids != pad_id
    else:
        real = np.ones(ids.shape, bool)
    _, trace = model.run_with_trace(ids, mask, keep="*.attn.weights")
    return ids, real, attention_weights(trace), trace


def diagnose(
    model: Encoder,
    token_ids: Any,
    mask: Any = None,
    *,
    held_out: tuple[Any, Any] | None = None,
    targets: tuple[np.ndarray, np.ndarray] | None = None,
    pad_id: int | None = None,
    sink_ids: Iterable[int] = (),
    sink_positions: Iterable[int] = (0,),
    thresholds: DiagnosticThresholds = DiagnosticThresholds(),
    n_splits: int = 50,
    seed: int = 0,
) -> Report:
    """Flag heads that read padding or sinks, are near-uniform, duplicated, or overfit.

    Parameters
    ----------
    model : Encoder
    token_ids : int array of shape (B, S)
        The inputs (for the overfitting flag: training inputs).
    mask : array of shape (B, S), optional
        Passed to the model as usual. Padding is where it is 0, or (without a mask) where
        ``token_ids == pad_id`` -- the model then attends to it, which the padding flag shows.
    held_out : (token_ids, mask), optional
        Held-out inputs (mask may be None) for the overfitting flag.
    targets : (T_inputs, T_held_out), optional
        Attention target matrices of shape (B, S, S) for both sets (e.g. a task's
        ``attention_target``): the overfitting flag then uses the pattern-score drop.
    pad_id : int, optional
    sink_ids : ids of sink tokens ([CLS], [SEP], ...)
    sink_positions : positions of sink tokens (default ``(0,)``: the first token)
    thresholds : DiagnosticThresholds
    n_splits : int
        Random splits of the pooled inputs that estimate the sampling noise of the average
        patterns (overfitting flag without targets).
    seed : int
        Seeds those splits.

    Returns
    -------
    Report
    """
    if targets is not None and held_out is None:
        raise ValueError("targets need held_out inputs (targets = (T_inputs, T_held_out))")
    ids, real, A, trace = _run(model, token_ids, mask, pad_id)
    L, B, H, S, _ = A.shape
    t = thresholds
    stats = head_statistics(A, ids, real, special_ids=sink_ids, special_positions=sink_positions)
    padding = np.einsum("lbhij,bj,bi->lh", A, (~real).astype(float), real) / real.sum()
    uniformity = stats.entropy / np.maximum(stats.uniform_entropy, 1e-12)
    D = head_distances(A, real) + np.diag(np.full(L * H, np.inf))  # no head is its own twin
    nearest = D.min(axis=1).reshape(L, H)
    names = head_names(L, H)

    overfit, measure, n_held = None, "", 0
    if held_out is not None:
        held_ids, held_real, held_A, held_trace = _run(model, held_out[0], held_out[1], pad_id)
        n_held = len(held_ids)
        if targets is not None:
            overfit = head_scores(trace, np.asarray(targets[0])) - head_scores(
                held_trace, np.asarray(targets[1])
            )
            measure = "pattern drop"
        else:
            overfit = excess_pattern_distance(A, real, held_A, held_real, n_splits, seed)
            measure = "excess JS distance"

    flags = []
    for l in range(L):
        for h in range(H):
            index = l * H + h
            dup = names[int(np.argmin(D[index]))]
            found = [  # (kind, value, threshold, raised?, evidence)
                ("padding", padding[l, h], t.padding, padding[l, h] > t.padding,
                 f"{padding[l, h]:.2f} of attention on padding"),
                ("sink", stats.special[l, h], t.sink, stats.special[l, h] > t.sink,
                 f"{stats.special[l, h]:.2f} of attention on sink tokens"),
                ("duplicate", nearest[l, h], t.duplicate, nearest[l, h] < t.duplicate,
                 f"JS distance {nearest[l, h]:.3f} to {dup}"),
                ("uniform", uniformity[l, h], t.uniform, uniformity[l, h] > t.uniform,
                 f"entropy {stats.entropy[l, h]:.2f} = {uniformity[l, h]:.0%} of uniform "
                 f"({stats.uniform_entropy[l, h]:.2f} nats)"),
            ]  # fmt: skip
            if overfit is not None:
                limit = t.pattern_drop if targets is not None else t.overfit
                found.append(
                    ("overfit", overfit[l, h], limit, overfit[l, h] > limit,
                     f"{measure} {overfit[l, h]:.3f} from inputs to held-out")
                )  # fmt: skip
            for kind, value, limit, raised, evidence in found:
                if raised:
                    flags.append(Flag(l, h, kind, float(value), limit, evidence))
    return Report(
        flags=tuple(flags),
        padding=padding,
        sink=stats.special,
        uniformity=uniformity,
        nearest=nearest,
        overfit=overfit,
        overfit_measure=measure,
        thresholds=t,
        n_inputs=B,
        n_held_out=n_held,
    )


def average_pattern(weights: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each head's attention averaged over the sequences, row by row.

    ``Abar[l, h, i, :] = sum_b real[b, i] A[l, b, h, i, :] / sum_b real[b, i]``.

    Returns
    -------
    Abar : ndarray of shape (L, H, S, S)
    rows : bool ndarray of shape (S,)
        Query positions real in at least one sequence (the other rows of Abar are 0).
    """
    counts = real.sum(axis=0)  # (S,)
    total = np.einsum("lbhij,bi->lhij", weights, real.astype(float))
    return total / np.maximum(counts, 1)[:, None], counts > 0


def _pattern_distance(
    A: np.ndarray, real: np.ndarray, first: np.ndarray, second: np.ndarray
) -> np.ndarray:
    """(L, H): mean over shared real rows of sqrt(JS) between two subsets' average patterns."""
    P, rows_p = average_pattern(A[:, first], real[first])
    Q, rows_q = average_pattern(A[:, second], real[second])
    rows = rows_p & rows_q
    return np.sqrt(js_divergence(P, Q))[..., rows].mean(axis=-1)


def excess_pattern_distance(
    A: np.ndarray,
    real: np.ndarray,
    held_A: np.ndarray,
    held_real: np.ndarray,
    n_splits: int = 50,
    seed: int = 0,
) -> np.ndarray:
    """How much more the average patterns of two sets differ than chance would make them.

    ``d = mean_i sqrt(JS(Abar_inputs[i], Abar_held[i]))`` per head, minus the mean of the
    same distance over ``n_splits`` random splits of the pooled sequences into sets of the
    same two sizes. Inputs of different lengths are padded to the longer one.

    Parameters
    ----------
    A, held_A : ndarray of shape (L, B, H, S, S) and (L, B', H, S', S')
    real, held_real : bool ndarray of shape (B, S) and (B', S')

    Returns
    -------
    ndarray of shape (L, H): about 0 when the head attends alike on both sets.
    """
    S = max(A.shape[-1], held_A.shape[-1])

    def padded(W: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        extra = S - W.shape[-1]
        W = np.pad(W, [(0, 0)] * 3 + [(0, extra), (0, extra)])
        return W, np.pad(r, [(0, 0), (0, extra)])

    A, real = padded(A, real)
    held_A, held_real = padded(held_A, held_real)
    pooled, pooled_real = np.concatenate([A, held_A], axis=1), np.concatenate([real, held_real])
    B, N = A.shape[1], pooled.shape[1]
    first = np.arange(N) < B
    observed = _pattern_distance(pooled, pooled_real, first, ~first)
    rng = np.random.default_rng(seed)
    chance = np.mean(
        [
            _pattern_distance(pooled, pooled_real, split, ~split)
            for split in (rng.permutation(first) for _ in range(n_splits))
        ],
        axis=0,
    )
    return observed - chance


def flagged_heads(report: Report, kind: str) -> list[tuple[int, int]]:
    """The (layer, head) pairs with a flag of ``kind`` (one of :data:`FLAGS`)."""
    if kind not in FLAGS:
        raise ValueError(f"kind must be one of {FLAGS}, got {kind!r}")
    return [(f.layer, f.head) for f in report.flags if f.kind == kind]
