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
             averages of few inputs differ by chance), ``> overfit`` *and* more than
             ``NOISE_SIGMAS`` (4) standard deviations of those random-split distances.
===========  ==================================================================================

**Enough data for an overfitting verdict.** Each set needs at least
:data:`MIN_OVERFIT_INPUTS` (16) sequences; with fewer, :func:`diagnose` gives no overfitting
verdict, and its report says "not enough data (n = ...)". The reason: an average attention
pattern over a handful of sentences moves with every sentence in it. Measured on
all-MiniLM-L6-v2 with two disjoint sets of template sentences from *one* distribution (so no
head can be overfit), 5 pairs of sets per size: the excess distance alone (``> 0.05``) flagged
heads in 2 of 5 reports at 4 sentences per set (4 and 12 of 72 heads) and at 8 (7 and 10
heads), and the spread of the random-split distances reached 0.05-0.07 for the noisiest head,
as large as the threshold. At 16 per set the spread is at most about 0.05 and falls as
``1 / sqrt(n)`` (0.02 at 64); 16 is also the smallest training set of the overfitting lesson
(:func:`~minitransformer.training.overfitting_report`, ``n_small=16``), where the flag must
fire. With 16-32 sentences per set the excess alone still flagged 1-3 heads in 3 of 10
reports, and a 3-standard-deviation rule in 3 of 16; the 4-standard-deviation rule flagged
none in 36 reports (12 pairs of sets at each of 16, 32 and 64 sentences per set).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from minitransformer.encoder import Encoder
from minitransformer.interpret.checks import check_count, check_seed
from minitransformer.interpret.inputs import model_inputs
from minitransformer.interpret.similarity import head_distances, head_names, js_divergence
from minitransformer.interpret.stats import attention_weights, head_statistics
from minitransformer.tasks import head_scores
from minitransformer.tokenizer import BatchEncoding
from minitransformer.trace import Trace

#: The flags, in the order a head's colour is chosen by (the first that applies).
FLAGS = ("padding", "sink", "duplicate", "uniform", "overfit")

#: Fewest sequences in each set (inputs and held-out) for an overfitting verdict (see the
#: module docstring for the measurements behind it).
MIN_OVERFIT_INPUTS = 16

#: An excess JS distance counts only when it is more than this many standard deviations of the
#: random-split distances (the sampling noise of the two averages).
NOISE_SIGMAS = 4.0


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
        held-out inputs or without enough of them (see ``overfit_note``).
    overfit_measure : str
        ``"pattern drop"``, ``"excess JS distance"`` or ``""``.
    thresholds : DiagnosticThresholds
    n_inputs, n_held_out : int
    overfit_noise : ndarray of shape (L, H) or None
        For the excess JS distance: the standard deviation of the random-split distances (a
        head is flagged only above ``NOISE_SIGMAS`` times it); else None.
    overfit_note : str
        Why there is no overfitting verdict: ``"no held-out inputs"`` or ``"not enough data
        (n = 4 inputs + 4 held-out; a verdict needs at least 16 of each)"``; ``""`` when the
        verdict was made.
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
    overfit_noise: np.ndarray | None = None
    overfit_note: str = "no held-out inputs"

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
        if self.overfit_note:
            lines.append(f"overfitting: {self.overfit_note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _limit(flag: Flag) -> str:
    below = flag.kind == "duplicate"
    return f"{'<' if below else '>'} {flag.threshold:.2f}"


def _run(
    model: Encoder, token_ids: Any, mask: Any, token_type_ids: Any, pad_id: int | None, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Trace]:
    """ids (B, S), real (B, S) bool, weights (L, B, H, S, S), trace.

    The model gets the mask as given (none: every token attended, to show a forgotten mask);
    ``real`` is that mask, or without one the tokens that are not ``pad_id``.
    """
    mask_given = mask is not None or isinstance(token_ids, BatchEncoding)
    x = model_inputs(model, token_ids, mask, token_type_ids, name=name)
    real = x.mask if mask_given or pad_id is None else x.token_ids != pad_id
    if not real.any():
        raise ValueError(
            f"{name} has no real token (all masked or all pad_id): nothing to diagnose"
        )
    _, trace = x.run_with_trace(model, keep="*.attn.weights")
    return x.token_ids, real, attention_weights(trace), trace


def _held_out_parts(held_out: Any) -> tuple[Any, Any, Any]:
    """``held_out`` as (token_ids, mask, token_type_ids): a BatchEncoding, or a tuple of 2 or 3."""
    if isinstance(held_out, BatchEncoding):
        return held_out, None, None
    if isinstance(held_out, tuple) and len(held_out) in (2, 3):
        return held_out[0], held_out[1], held_out[2] if len(held_out) == 3 else None
    raise TypeError(
        "held_out must be a BatchEncoding or a tuple (token_ids, mask) or (token_ids, mask, "
        f"token_type_ids), got {type(held_out).__name__}"
    )


def diagnose(
    model: Encoder,
    token_ids: Any,
    mask: Any = None,
    *,
    held_out: Any = None,
    targets: tuple[np.ndarray, np.ndarray] | None = None,
    pad_id: int | None = None,
    sink_ids: Iterable[int] = (),
    sink_positions: Iterable[int] = (0,),
    thresholds: DiagnosticThresholds = DiagnosticThresholds(),
    n_splits: int = 50,
    seed: int = 0,
    token_type_ids: Any = None,
) -> Report:
    """Flag heads that read padding or sinks, are near-uniform, duplicated, or overfit.

    Parameters
    ----------
    model : Encoder
    token_ids : int array of shape (B, S), or BatchEncoding
        The inputs (for the overfitting flag: training inputs).
    mask : array of shape (B, S), optional
        Passed to the model as usual. Padding is where it is 0, or (without a mask) where
        ``token_ids == pad_id`` -- the model then attends to it, which the padding flag shows.
    held_out : BatchEncoding, or tuple (token_ids, mask) or (token_ids, mask, token_type_ids)
        Held-out inputs (mask may be None) for the overfitting flag; it needs at least
        :data:`MIN_OVERFIT_INPUTS` sequences here and in ``token_ids``, else the report says
        "not enough data".
    targets : (T_inputs, T_held_out), optional
        Attention target matrices of shape (B, S, S) for both sets (e.g. a task's
        ``attention_target``): the overfitting flag then uses the pattern-score drop.
    pad_id : int, optional
    sink_ids : ids of sink tokens ([CLS], [SEP], ...)
    sink_positions : positions of sink tokens (default ``(0,)``: the first token)
    thresholds : DiagnosticThresholds
    n_splits : int
        Random splits of the pooled inputs that estimate the sampling noise of the average
        patterns (overfitting flag without targets); at least 2.
    seed : int
        Seeds those splits.
    token_type_ids : int array of shape (B, S), optional
        Segment ids of the inputs (sentence pairs).

    Returns
    -------
    Report
    """
    if targets is not None and held_out is None:
        raise ValueError("targets need held_out inputs (targets = (T_inputs, T_held_out))")
    n_splits, seed = check_count(n_splits, "n_splits", minimum=2), check_seed(seed)
    ids, real, A, trace = _run(model, token_ids, mask, token_type_ids, pad_id, "token_ids")
    L, B, H, S, _ = A.shape
    t = thresholds
    stats = head_statistics(
        A,
        ids,
        real,
        special_ids=sink_ids,
        special_positions=sink_positions,
        causal=model.config.causal,
    )
    padding = np.einsum("lbhij,bj,bi->lh", A, (~real).astype(float), real) / real.sum()
    uniformity = stats.entropy / np.maximum(stats.uniform_entropy, 1e-12)
    D = head_distances(A, real) + np.diag(np.full(L * H, np.inf))  # no head is its own twin
    nearest = D.min(axis=1).reshape(L, H)
    names = head_names(L, H)

    overfit, noise, measure, n_held, note = None, None, "", 0, "no held-out inputs"
    if held_out is not None:
        held_ids, held_real, held_A, held_trace = _run(
            model, *_held_out_parts(held_out), pad_id, "held_out"
        )
        n_held = len(held_ids)
        measure = "pattern drop" if targets is not None else "excess JS distance"
        if min(B, n_held) < MIN_OVERFIT_INPUTS:
            note = (
                f"not enough data (n = {B} inputs + {n_held} held-out; a verdict needs at least "
                f"{MIN_OVERFIT_INPUTS} of each)"
            )
        elif targets is not None:
            note = ""
            overfit = head_scores(trace, np.asarray(targets[0])) - head_scores(
                held_trace, np.asarray(targets[1])
            )
        else:
            note = ""
            observed, chance = split_distances(A, real, held_A, held_real, n_splits, seed)
            overfit, noise = observed - chance.mean(axis=0), chance.std(axis=0)

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
            if overfit is not None and noise is None:
                found.append(
                    ("overfit", overfit[l, h], t.pattern_drop, overfit[l, h] > t.pattern_drop,
                     f"{measure} {overfit[l, h]:.3f} from inputs to held-out")
                )  # fmt: skip
            elif overfit is not None and noise is not None:
                above = overfit[l, h] > max(t.overfit, NOISE_SIGMAS * noise[l, h])
                found.append(
                    ("overfit", overfit[l, h], t.overfit, above,
                     f"{measure} {overfit[l, h]:.3f} (noise {noise[l, h]:.3f}) from inputs "
                     f"to held-out")
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
        overfit_noise=noise,
        overfit_note=note,
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


def split_distances(
    A: np.ndarray,
    real: np.ndarray,
    held_A: np.ndarray,
    held_real: np.ndarray,
    n_splits: int = 50,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The distance between the two sets' average patterns, and the same for random splits.

    ``d = mean_i sqrt(JS(Abar_inputs[i], Abar_held[i]))`` per head, for the given sets and for
    ``n_splits`` random splits of the pooled sequences into sets of the same two sizes (what
    chance alone gives: averages of few inputs differ). Inputs of different lengths are padded
    to the longer one.

    Parameters
    ----------
    A, held_A : ndarray of shape (L, B, H, S, S) and (L, B', H, S', S')
    real, held_real : bool ndarray of shape (B, S) and (B', S')
    n_splits, seed : int

    Returns
    -------
    observed : ndarray of shape (L, H)
    chance : ndarray of shape (n_splits, L, H)
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
    chance = np.stack(
        [
            _pattern_distance(pooled, pooled_real, split, ~split)
            for split in (rng.permutation(first) for _ in range(n_splits))
        ]
    )
    return observed, chance


def excess_pattern_distance(
    A: np.ndarray,
    real: np.ndarray,
    held_A: np.ndarray,
    held_real: np.ndarray,
    n_splits: int = 50,
    seed: int = 0,
) -> np.ndarray:
    """How much more the average patterns of two sets differ than chance would make them:
    the observed distance of :func:`split_distances` minus the mean of its random splits.

    Returns
    -------
    ndarray of shape (L, H): about 0 when the head attends alike on both sets.
    """
    observed, chance = split_distances(A, real, held_A, held_real, n_splits, seed)
    return observed - chance.mean(axis=0)


def flagged_heads(report: Report, kind: str) -> list[tuple[int, int]]:
    """The (layer, head) pairs with a flag of ``kind`` (one of :data:`FLAGS`)."""
    if kind not in FLAGS:
        raise ValueError(f"kind must be one of {FLAGS}, got {kind!r}")
    return [(f.layer, f.head) for f in report.flags if f.kind == kind]
