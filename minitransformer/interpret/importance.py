"""Which heads matter, and how many does the model need? Head importance and pruning curves.

Michel, Levy & Neubig (2019), "Are Sixteen Heads Really Better than One?". Put a gate on
every head's output -- the head mask, their xi (``MHA(x) = sum_h head_mask[h] z_h W_O[h] +
b_O``, all 1 in the trained model). The **importance** of head h is how much the loss changes,
to first order, when its entry of the head mask moves (Eq. 2; the Taylor criterion of
Molchanov et al. 2017)::

    I_h = E_x | dL(x) / dhead_mask[h] |

One forward and one backward pass give it for every head at once
(:attr:`Gradients.head_mask`); the absolute value is taken *per sequence*, as in the paper
(the Hugging Face ``bertology`` script takes it of the batch sum, which is the same only at
batch size 1). Michel et al. then divide each layer's scores by their l2 norm
(``I[l] / ||I[l]||_2``), so scores compare heads within a layer and layers stay comparable.

**Ablation importance** asks the question directly: the drop of a metric when head h alone is
removed, ``metric(all heads) - metric(all but h)``, one forward pass per head.

A **pruning curve** removes heads one after another in a given order (least important first,
or at random) and records the metric after each removal: if the importance order keeps the
metric up much longer than random order, the scores found the heads that matter, and the
curve reads off how many heads the model needs (Michel et al.: 20-40% of heads removable
without loss). Heads are ranked once, before pruning (the paper's Figure 3); re-ranking after
each step (as the bertology script does) is a variant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from minitransformer.encoder import Encoder
from minitransformer.interpret.checks import check_count, check_seed
from minitransformer.interpret.inputs import model_inputs
from minitransformer.interpret.interventions import check_heads, head_mask_without
from minitransformer.interpret.objectives import Objective

Metric = Callable[[np.ndarray], float]  # hidden (B, S, D) -> a number, higher is better


def _check_importance(importance: Any) -> np.ndarray:
    """``importance`` as a finite float64 (n_layers, n_heads) array, or a clear error."""
    I = np.asarray(importance, dtype=np.float64)
    if I.ndim != 2 or I.size == 0:
        raise ValueError(f"importance must have shape (n_layers, n_heads), got {I.shape}")
    if not np.isfinite(I).all():
        raise ValueError("importance must be finite numbers, got nan or inf")
    return I


def normalize_per_layer(importance: np.ndarray) -> np.ndarray:
    """``I[l] / ||I[l]||_2`` for every layer l (Michel et al.); all-zero layers stay 0."""
    I = _check_importance(importance)
    norms = np.linalg.norm(I, axis=1, keepdims=True)
    return I / np.where(norms > 0, norms, 1.0)


def gradient_importance(
    model: Encoder,
    token_ids: Any,
    objective: Objective,
    mask: Any = None,
    *,
    normalize: bool = True,
    token_type_ids: Any = None,
) -> np.ndarray:
    """Michel et al.'s head importance ``I_h = mean over sequences of |dL(x)/dxi_h|``.

    Parameters
    ----------
    model : Encoder
    token_ids, mask, token_type_ids
        The batch of inputs x (B, S), as for the model (or a BatchEncoding alone).
    objective : callable
        ``objective(hidden) -> (L per sequence (B,), dL/dhidden)``, e.g.
        :func:`~minitransformer.interpret.objectives.classification_loss`.
    normalize : bool
        Divide each layer by its l2 norm (:func:`normalize_per_layer`), as in the paper.

    Returns
    -------
    ndarray of shape (n_layers, n_heads)
    """
    x = model_inputs(model, token_ids, mask, token_type_ids)
    hidden, trace = x.run_with_trace(model)
    _, grad_hidden = objective(hidden)
    grads = x.backward(model, trace, grad_hidden)
    importance = np.abs(grads.head_mask).mean(axis=0)  # (B, L, H) -> (L, H)
    return normalize_per_layer(importance) if normalize else importance


def ablation_importance(
    model: Encoder, token_ids: Any, metric: Metric, mask: Any = None, *, token_type_ids: Any = None
) -> np.ndarray:
    """``metric(all heads) - metric(all heads but h)`` for every head (zero-ablation).

    ``metric(hidden) -> float`` is computed on the hidden states of ``token_ids`` (with
    ``mask`` and ``token_type_ids``), higher is better.

    Returns
    -------
    ndarray of shape (n_layers, n_heads): positive where removing the head hurts.
    """
    cfg = model.config
    x = model_inputs(model, token_ids, mask, token_type_ids)
    full = metric(x.run(model))
    drop = np.zeros((cfg.n_layers, cfg.n_heads))
    for l in range(cfg.n_layers):
        for h in range(cfg.n_heads):
            without = x.run(model, head_mask=head_mask_without(cfg, [(l, h)]))
            drop[l, h] = full - metric(without)
    return drop


def importance_order(importance: np.ndarray) -> list[tuple[int, int]]:
    """All heads as (layer, head), least important first (ties: in layer, head order)."""
    I = _check_importance(importance)
    flat = np.argsort(I.ravel(), kind="stable")
    return [(int(i) // I.shape[1], int(i) % I.shape[1]) for i in flat]


def random_order(n_layers: int, n_heads: int, seed: int = 0) -> list[tuple[int, int]]:
    """All heads as (layer, head) in a random order."""
    n_layers, n_heads = check_count(n_layers, "n_layers"), check_count(n_heads, "n_heads")
    flat = np.random.default_rng(check_seed(seed)).permutation(n_layers * n_heads)
    return [(int(i) // n_heads, int(i) % n_heads) for i in flat]


@dataclass(frozen=True)
class PruningCurve:
    """The metric after removing the first k heads of ``order``, for k = 0, 1, ...

    Attributes
    ----------
    order : list of (layer, head)
        The removal order.
    n_removed : int ndarray of shape (K + 1,)
    metric : float ndarray of shape (K + 1,)
        ``metric[k]`` with heads ``order[:n_removed[k]]`` removed; ``metric[0]`` is the full
        model.
    n_heads : int
        Number of heads of the model.
    label : str
    """

    order: list[tuple[int, int]]
    n_removed: np.ndarray
    metric: np.ndarray
    n_heads: int
    label: str = ""

    def heads_needed(self, fraction: float = 0.9) -> int:
        """Fewest heads kept while the metric stays at least ``fraction`` of the full model's.

        Reads the curve from the left: the largest k such that every point up to k keeps
        ``metric >= fraction * metric[0]``; returns (number of heads) - k.
        """
        ok = self.metric >= fraction * self.metric[0]
        k = len(ok) - 1 if ok.all() else max(int(np.argmin(ok)) - 1, 0)
        return self.n_heads - int(self.n_removed[k])


def pruning_curve(
    model: Encoder,
    token_ids: Any,
    metric: Metric,
    order: Sequence[tuple[int, int]],
    mask: Any = None,
    *,
    token_type_ids: Any = None,
    label: str = "",
) -> PruningCurve:
    """Remove heads one by one in ``order`` (zero-ablation) and record ``metric`` each time.

    Parameters
    ----------
    model : Encoder
    token_ids, mask, token_type_ids
        The evaluation inputs, as for the model (or a BatchEncoding alone).
    metric : callable
        ``metric(hidden) -> float``, higher is better (accuracy, cosine with the full model's
        sentence embeddings, minus the loss, ...).
    order : list of (layer, head)
        E.g. :func:`importance_order` or :func:`random_order`; may stop before every head.
    label : str
        Name of the order, for figures.

    Returns
    -------
    PruningCurve with ``len(order) + 1`` points.
    """
    cfg = model.config
    order = check_heads(cfg, order, "order")
    x = model_inputs(model, token_ids, mask, token_type_ids)
    values = [metric(x.run(model))]
    for k in range(1, len(order) + 1):
        values.append(metric(x.run(model, head_mask=head_mask_without(cfg, order[:k]))))
    n_removed = np.arange(len(order) + 1)
    return PruningCurve(
        order, n_removed, np.array(values, dtype=float), cfg.n_layers * cfg.n_heads, label
    )
