"""Do two explanations agree? Rank correlation, and raw attention vs rollout vs occlusion.

Spearman's rank correlation (Spearman 1904) is the Pearson correlation of the ranks::

    rho = corr(rank(a), rank(b))

Tied values share the mean of their ranks. rho = 1 when b orders the tokens exactly as a does,
-1 for the reverse order, about 0 for unrelated orders. When a or b is constant its ranks do
not vary and rho is 0 / 0, undefined: :func:`spearman` raises ``ValueError`` then, and the
tables below (:class:`Agreement`, and ``RankingAgreement`` of
:mod:`~minitransformer.interpret.explanation`) record nan for that input, leave it out of the
mean and count it.

Abnar & Zuidema (2020, Tables 1-2) compared each relevance map's row for the output position
with occlusion ("blank-out") importance: raw attention of the last layer agrees less with
occlusion than rollout and flow do. :func:`relevance_vs_occlusion` computes those
correlations for a model and a batch of inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from minitransformer.encoder import Encoder
from minitransformer.interpret.attribution import occlusion
from minitransformer.interpret.inputs import every_sequence_real, model_inputs
from minitransformer.interpret.objectives import Objective
from minitransformer.interpret.rollout import attention_flow, attention_rollout
from minitransformer.interpret.stats import attention_weights


def _finite_vector(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array of finite numbers, or a clear error."""
    a = np.asarray(values)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"{name} must be numbers, got an array of dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per token), got shape {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(
            f"{name} must be finite, got {a[~np.isfinite(a)][0]} at index "
            f"{int(np.flatnonzero(~np.isfinite(a))[0])}"
        )
    return a


def rank(values: Any) -> np.ndarray:
    """Ranks 1..n of ``values`` (1 = smallest); tied values get the mean of their ranks.

    ``values`` is 1-D and finite (``ValueError`` otherwise).
    """
    a = _finite_vector(values, "values")
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(1, len(a) + 1)
    for v in np.unique(a):  # ties: replace each group's ranks by their mean
        tied = a == v
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two equally long, finite 1-D arrays.

    Raises
    ------
    ValueError
        If the lengths differ, or if ``a`` or ``b`` is constant (every value equal, or a
        single value): its ranks do not vary, so rho = 0 / 0 is undefined. Use
        :func:`spearman_or_nan` to record such a case as nan in a table.
    """
    x, y = rank(_finite_vector(a, "a")), rank(_finite_vector(b, "b"))
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {x.shape} and {y.shape}")
    for name, ranks in (("a", x), ("b", y)):
        if ranks.size == 0 or np.ptp(ranks) == 0:
            raise ValueError(
                f"{name} is constant ({len(ranks)} equal value(s)): its ranks do not vary, so "
                f"a rank correlation with it is undefined"
            )
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / np.sqrt((x**2).sum() * (y**2).sum()))


def spearman_or_nan(a: Any, b: Any) -> float:
    """:func:`spearman`, or nan when ``a`` or ``b`` is constant (for tables that count those)."""
    a, b = _finite_vector(a, "a"), _finite_vector(b, "b")
    if any(v.size == 0 or np.ptp(v) == 0 for v in (a, b)):
        return float("nan")
    return spearman(a, b)


def mean_std_defined(values: np.ndarray) -> tuple[float, float, int]:
    """(mean, std, n) over the values that are not nan; (nan, nan, 0) when none is."""
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return float("nan"), float("nan"), 0
    return float(defined.mean()), float(defined.std()), int(defined.size)


@dataclass(frozen=True)
class Agreement:
    """Spearman correlations with occlusion, one per example, for each relevance map.

    ``rho[name]`` is an ndarray of shape (n_examples,): nan where the map or the occlusion
    scores are constant over the example's real tokens (rho undefined).
    """

    rho: dict[str, np.ndarray]

    def summary(self) -> dict[str, tuple[float, float]]:
        """``name -> (mean, std)`` over the examples where rho is defined; (nan, nan) when it
        is defined for none (:meth:`table` says so)."""
        return {k: mean_std_defined(v)[:2] for k, v in self.rho.items()}

    def table(self) -> str:
        """A printable table: method, mean rho, std, and how many examples had a defined rho."""
        lines = [f"{'relevance':<22} {'Spearman rho vs occlusion':>26}   defined for"]
        for name, values in self.rho.items():
            mean, std, n = mean_std_defined(values)
            cell = f"{mean:>18.2f} +- {std:.2f}" if n else f"{'undefined (constant)':>26}"
            lines.append(f"{name:<22} {cell}   {n} of {len(values)}")
        return "\n".join(lines)


def relevance_vs_occlusion(
    model: Encoder,
    token_ids: Any,
    objective_of: Callable[[int], tuple[Objective, int]],
    mask: Any = None,
    *,
    replace_with: int | None = None,
    flow: bool = True,
    layer: int = -1,
    token_type_ids: Any = None,
) -> Agreement:
    """Abnar & Zuidema's comparison: does each relevance map rank tokens as occlusion does?

    For each example b, with ``(F, i) = objective_of(b)`` (the objective explained and the
    position it reads), the relevance of input token j is

    * ``raw``: the head-averaged attention of block ``layer``, ``mean_h A[layer, h, i, j]``;
    * ``rollout``: :func:`attention_rollout` after block ``layer``, row i;
    * ``flow``: :func:`attention_flow` after block ``layer``, row i (if ``flow``);

    and each is compared with :func:`occlusion` scores of F by Spearman's rho over the real
    tokens (nan where either is constant).

    Parameters
    ----------
    model : Encoder
    token_ids, mask, token_type_ids : arrays of shape (B, S), or a BatchEncoding alone
    objective_of : callable
        ``objective_of(b) -> (objective, position)`` for example b.
    replace_with : int, optional
        Passed to :func:`occlusion`.
    flow : bool
        Also compute attention flow (slow for long inputs).
    layer : int
        Which block's maps, from ``-n_layers`` to ``n_layers - 1`` (default -1, the last;
        Abnar & Zuidema report layers 1, 3 and 6 of 6).

    Returns
    -------
    Agreement
    """
    x = every_sequence_real(model_inputs(model, token_ids, mask, token_type_ids))
    L = model.config.n_layers
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not -L <= layer < L:
        raise ValueError(f"layer must be an int in [-{L}, {L}), got {layer!r}")
    _, trace = x.run_with_trace(model, keep="*.attn.weights")
    A = attention_weights(trace)  # (L, B, H, S, S)
    last = range(L)[layer]  # the block's index from 0 (layer=-1: the last block)
    maps = {"raw": A[last].mean(axis=1), "rollout": attention_rollout(A)[last]}
    if flow:  # the flow after block `last` needs only the blocks up to it
        maps["flow"] = attention_flow(A[: last + 1], x.mask)[-1]
    rho: dict[str, list[float]] = {name: [] for name in maps}
    for b in range(len(x)):
        objective, i = objective_of(b)
        one = x.rows(b)
        scores = occlusion(
            model,
            one.token_ids,
            objective,
            one.mask,
            replace_with=replace_with,
            token_type_ids=one.token_type_ids,
        )
        keep = x.mask[b]
        for name, relevance in maps.items():
            rho[name].append(spearman_or_nan(relevance[b, i][keep], scores[keep]))
    return Agreement({name: np.array(values) for name, values in rho.items()})
