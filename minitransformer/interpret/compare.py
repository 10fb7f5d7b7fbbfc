"""Do two explanations agree? Rank correlation, and raw attention vs rollout vs occlusion.

Spearman's rank correlation (Spearman 1904) is the Pearson correlation of the ranks::

    rho = corr(rank(a), rank(b))

Tied values share the mean of their ranks. rho = 1 when b orders the tokens exactly as a does,
-1 for the reverse order, about 0 for unrelated orders.

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
from minitransformer.interpret.objectives import Objective
from minitransformer.interpret.rollout import attention_flow, attention_rollout
from minitransformer.interpret.stats import attention_weights


def rank(values: Any) -> np.ndarray:
    """Ranks 1..n of ``values`` (1 = smallest); tied values get the mean of their ranks."""
    a = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(1, len(a) + 1)
    for v in np.unique(a):  # ties: replace each group's ranks by their mean
        tied = a == v
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two equally long 1-D arrays (nan if one is constant)."""
    x, y = rank(a), rank(b)
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {x.shape} and {y.shape}")
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x**2).sum() * (y**2).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else float("nan")


@dataclass(frozen=True)
class Agreement:
    """Spearman correlations with occlusion, one per example, for each relevance map.

    ``rho[name]`` is an ndarray of shape (n_examples,) (nan where a map is constant).
    """

    rho: dict[str, np.ndarray]

    def summary(self) -> dict[str, tuple[float, float]]:
        """``name -> (mean, std)`` over the examples (ignoring nan)."""
        return {k: (float(np.nanmean(v)), float(np.nanstd(v))) for k, v in self.rho.items()}

    def table(self) -> str:
        """A printable table: method, mean rho, std."""
        lines = [f"{'relevance':<22} {'Spearman rho vs occlusion':>26}"]
        for name, (mean, std) in self.summary().items():
            lines.append(f"{name:<22} {mean:>18.2f} +- {std:.2f}")
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
) -> Agreement:
    """Abnar & Zuidema's comparison: does each relevance map rank tokens as occlusion does?

    For each example b, with ``(F, i) = objective_of(b)`` (the objective explained and the
    position it reads), the relevance of input token j is

    * ``raw``: the head-averaged attention of block ``layer``, ``mean_h A[layer, h, i, j]``;
    * ``rollout``: :func:`attention_rollout` after block ``layer``, row i;
    * ``flow``: :func:`attention_flow` after block ``layer``, row i (if ``flow``);

    and each is compared with :func:`occlusion` scores of F by Spearman's rho over the real
    tokens.

    Parameters
    ----------
    model : Encoder
    token_ids, mask : arrays of shape (B, S)
    objective_of : callable
        ``objective_of(b) -> (objective, position)`` for example b.
    replace_with : int, optional
        Passed to :func:`occlusion`.
    flow : bool
        Also compute attention flow (slow for long inputs).
    layer : int
        Which block's maps (default the last; Abnar & Zuidema report layers 1, 3 and 6 of 6).

    Returns
    -------
    Agreement
    """
    ids = np.asarray(token_ids)
    real = np.ones(ids.shape, bool) if mask is None else np.asarray(mask).astype(bool)
    _, trace = model.run_with_trace(ids, real, keep="*.attn.weights")
    A = attention_weights(trace)  # (L, B, H, S, S)
    last = range(len(A))[layer]  # the block's index from 0 (layer=-1: the last block)
    maps = {"raw": A[last].mean(axis=1), "rollout": attention_rollout(A)[last]}
    if flow:  # the flow after block `last` needs only the blocks up to it
        maps["flow"] = attention_flow(A[: last + 1], real)[-1]
    rho: dict[str, list[float]] = {name: [] for name in maps}
    for b in range(len(ids)):
        objective, i = objective_of(b)
        scores = occlusion(model, ids[b], objective, real[b], replace_with=replace_with)
        keep = real[b]
        for name, relevance in maps.items():
            rho[name].append(spearman(relevance[b, i][keep], scores[keep]))
    return Agreement({name: np.array(values) for name, values in rho.items()})
