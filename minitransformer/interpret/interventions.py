"""Change one part of the forward pass and measure what happens to the output.

Looking at attention shows what a head *could* pass on; intervening shows what the output
*needs*. Three interventions, all through the encoder's own hooks (``head_mask=`` and
``patch=`` of :meth:`~minitransformer.encoder.Encoder.run_with_trace`):

* **zero-ablation** of heads: their outputs ``z_h`` are multiplied by 0 (a head mask of 0,
  Michel et al. 2019), so ``MHA(x) = sum_(kept h) z_h W_O[h] + b_O``;
* **mean-ablation**: each removed head's ``z_h`` is replaced by its mean over a reference set
  of inputs, so the layer still receives a typical value, just no information about *this*
  input (zero is often far from anything the next layers saw in training);
* **activation patching** (Vig et al. 2020; Meng et al. 2022): run a *source* input, then run
  the *target* input with chosen trace entries replaced by the source's. If the output moves
  toward the source's output, those entries carry the difference;
* **attention permutation** (Jain & Wallace 2019): shuffle each query's attention weights
  over its keys and see whether the output cares *where* the weight goes.

:func:`intervention_effect` runs the clean and the changed pass and returns a metric of both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.interpret.checks import check_count, check_generator, check_index, check_seed
from minitransformer.interpret.inputs import model_inputs
from minitransformer.patching import Patch

Heads = Iterable[tuple[int, int]]  # (layer, head) pairs
Metric = Callable[[np.ndarray], Any]  # hidden (B, S, D) -> a number or an array


def check_heads(config: EncoderConfig, heads: Heads, name: str = "heads") -> list[tuple[int, int]]:
    """``heads`` as a list of (layer, head) int pairs inside the model, or a clear error."""
    if isinstance(heads, tuple) and len(heads) == 2 and all(np.ndim(v) == 0 for v in heads):
        raise TypeError(
            f"{name} must be a list of (layer, head) pairs, e.g. [{heads}], got {heads}"
        )
    checked = []
    for pair in heads:
        if np.ndim(pair) != 1 or len(pair) != 2:
            raise TypeError(f"each entry of {name} must be a (layer, head) pair, got {pair!r}")
        l, h = pair
        checked.append(
            (
                check_index(
                    l,
                    config.n_layers,
                    f"layer of {name} entry {pair}",
                    f" ({config.n_layers} layers)",
                ),
                check_index(
                    h, config.n_heads, f"head of {name} entry {pair}", f" ({config.n_heads} heads)"
                ),
            )
        )
    return checked


def head_mask_without(config: EncoderConfig, heads: Heads) -> np.ndarray:
    """The (n_layers, n_heads) head mask of ones with a 0 for every ``(layer, head)`` given."""
    head_mask = np.ones((config.n_layers, config.n_heads))
    for l, h in check_heads(config, heads):
        head_mask[l, h] = 0.0
    return head_mask


def mean_head_outputs(
    model: Encoder, token_ids: Any, mask: Any = None, *, token_type_ids: Any = None
) -> np.ndarray:
    """Every head's output ``z`` averaged over the real tokens of a reference batch.

    Parameters
    ----------
    model : Encoder
    token_ids, mask, token_type_ids
        The reference batch, as for the model (or a BatchEncoding alone).

    Returns
    -------
    ndarray of shape (n_layers, n_heads, d_head)
        ``[l, h] = mean over sequences b and real positions s of z[l][b, h, s]``.
    """
    x = model_inputs(model, token_ids, mask, token_type_ids)
    if not x.mask.any():
        raise ValueError("mask has no real token: there is no head output to average")
    _, trace = x.run_with_trace(model, keep="*.attn.z")
    z = np.stack([trace[f"blocks.{l}.attn.z"] for l in range(model.config.n_layers)])
    real = x.mask.astype(float)
    return np.einsum("lbhsd,bs->lhd", z, real) / real.sum()


def mean_ablation_patch(means: np.ndarray, heads: Heads) -> dict[str, Callable]:
    """A ``patch=`` that replaces each given head's ``z`` by its mean (:func:`mean_head_outputs`).

    Parameters
    ----------
    means : ndarray of shape (n_layers, n_heads, d_head)
    heads : iterable of (layer, head)

    Returns
    -------
    dict ``{"blocks.{l}.attn.z": f}`` where ``f(z)`` returns a copy of z with
    ``z[:, h] = means[l, h]`` at every position, for each removed head h of block l.
    """
    means = np.asarray(means)
    if means.ndim != 3:
        raise ValueError(
            f"means must have shape (n_layers, n_heads, d_head) (from mean_head_outputs), got "
            f"{means.shape}"
        )
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(
            check_index(l, means.shape[0], "layer of heads", " (the layers of means)"), []
        ).append(check_index(h, means.shape[1], "head of heads", " (the heads of means)"))

    def replace(layer: int, removed: list[int]) -> Callable[[np.ndarray], np.ndarray]:
        def f(z: np.ndarray) -> np.ndarray:  # (B, H, S, Dh)
            z = z.copy()
            z[:, removed] = means[layer, removed][None, :, None, :]
            return z

        return f

    return {f"blocks.{l}.attn.z": replace(l, hs) for l, hs in by_layer.items()}


def ablate_heads(
    model: Encoder,
    token_ids: Any,
    heads: Heads,
    mask: Any = None,
    *,
    means: np.ndarray | None = None,
    token_type_ids: Any = None,
) -> np.ndarray:
    """The hidden states with some heads removed: zero-ablation, or mean-ablation with ``means``.

    Parameters
    ----------
    model : Encoder
    token_ids, mask, token_type_ids
        As for the model (or a BatchEncoding alone).
    heads : iterable of (layer, head)
    means : ndarray of shape (n_layers, n_heads, d_head), optional
        From :func:`mean_head_outputs`; given, removed heads output their mean instead of 0.

    Returns
    -------
    ndarray of shape (B, S, D)
    """
    x = model_inputs(model, token_ids, mask, token_type_ids)
    heads = check_heads(model.config, heads)
    if means is None:
        return x.run(model, head_mask=head_mask_without(model.config, heads))
    expected = (model.config.n_layers, model.config.n_heads, model.config.d_head)
    if np.shape(means) != expected:
        raise ValueError(f"means must have shape {expected} for this model, got {np.shape(means)}")
    return x.run(model, patch=mean_ablation_patch(means, heads))


def patch_from(
    model: Encoder,
    source_ids: Any,
    names: Sequence[str],
    source_mask: Any = None,
    *,
    source_token_type_ids: Any = None,
) -> dict[str, np.ndarray]:
    """The entries ``names`` of the source input's trace, ready to pass as ``patch=``.

    Parameters
    ----------
    model : Encoder
    source_ids, source_mask, source_token_type_ids
        The source input, as for the model (or a BatchEncoding alone).
    names : list of str
        Trace names, e.g. ``["blocks.0.attn.out"]``.
    """
    if isinstance(names, str):
        raise TypeError(f"names must be a list of trace names, e.g. [{names!r}], got a str")
    x = model_inputs(model, source_ids, source_mask, source_token_type_ids, name="source_ids")
    _, trace = x.run_with_trace(model, keep=list(names))
    return {name: trace[name] for name in names}


@dataclass(frozen=True)
class Effect:
    """A metric of the clean pass and of the intervened pass, and their difference."""

    clean: Any
    intervened: Any
    change: Any  # intervened - clean


def intervention_effect(
    model: Encoder,
    token_ids: Any,
    metric: Metric,
    mask: Any = None,
    *,
    head_mask: Any = None,
    patch: Patch | None = None,
    token_type_ids: Any = None,
) -> Effect:
    """Run the clean pass and the pass with ``head_mask`` / ``patch``; compare ``metric``.

    Parameters
    ----------
    model : Encoder
    token_ids, mask, token_type_ids
        The (target) input, as for the model (or a BatchEncoding alone).
    metric : callable
        ``metric(hidden) -> number or ndarray``, e.g. the logit of the correct class, the
        accuracy of a classifier, or the hidden states themselves (``lambda h: h``).
    head_mask, patch
        As in :meth:`Encoder.run_with_trace`.

    Returns
    -------
    Effect
        ``change = metric(intervened) - metric(clean)``.

    Examples
    --------
    Does block 0's attention output carry what differs between two inputs?

    >>> patch = patch_from(model, other_ids, ["blocks.0.attn.out"])  # doctest: +SKIP
    >>> intervention_effect(model, ids, metric, patch=patch).change  # doctest: +SKIP
    """
    x = model_inputs(model, token_ids, mask, token_type_ids)
    clean = metric(x.run(model))
    intervened = metric(x.run(model, head_mask=head_mask, patch=patch))
    return Effect(clean, intervened, np.subtract(intervened, clean))


def permute_attention_patch(
    layers: Iterable[int], allowed: np.ndarray, rng: np.random.Generator
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """A ``patch=`` that shuffles every query row of ``blocks.{l}.attn.weights`` over its keys.

    Each row of each head gets its own random permutation of the keys it may see, so every
    row still sums to 1 and keeps the same *set* of weights; only which key receives which
    weight changes. Keys it may not see (padding, the future under a causal mask) keep 0.

    Parameters
    ----------
    layers : iterable of int
    allowed : bool ndarray broadcastable to (B, H, S, S)
        The attention mask of the forward pass (``trace["blocks.0.attn.mask"]``).
    rng : numpy.random.Generator
        Shared by all rows and calls (a seed would repeat the same permutation every call).
    """
    rng = check_generator(rng)

    def shuffle(weights: np.ndarray) -> np.ndarray:  # (B, H, S, S)
        out = np.zeros_like(weights)
        visible = np.broadcast_to(allowed, weights.shape)
        for index in np.ndindex(weights.shape[:-1]):
            keys = np.flatnonzero(visible[index])
            out[index + (rng.permutation(keys),)] = weights[index + (keys,)]
        return out

    return {f"blocks.{l}.attn.weights": shuffle for l in layers}


def attention_permutation_effect(
    model: Encoder,
    token_ids: Any,
    metric: Metric,
    mask: Any = None,
    *,
    layers: Iterable[int] | None = None,
    n_permutations: int = 100,
    seed: int = 0,
    token_type_ids: Any = None,
) -> np.ndarray:
    """Jain & Wallace (2019)'s permutation test: how much does shuffling attention move the output?

    For each of ``n_permutations`` runs, every query row of every head in ``layers`` is
    permuted over its keys (:func:`permute_attention_patch`), and the change of ``metric`` is
    recorded. Jain & Wallace report the median ``|change|``: if it is small although the
    attention is peaked, the output does not depend on *where* attention goes.

    Parameters
    ----------
    model : Encoder
    token_ids, mask, token_type_ids
        The inputs, as for the model (or a BatchEncoding alone).
    metric : callable
        ``metric(hidden) -> number or ndarray`` (e.g. the predicted class's probability per
        sequence).
    layers : iterable of int, optional
        Which blocks' attention to shuffle (default all).
    n_permutations : int
        At least 1 (Jain & Wallace use 100).
    seed : int

    Returns
    -------
    ndarray of shape (n_permutations, *metric's shape)
        ``metric(permuted) - metric(clean)`` for each run.
    """
    n_permutations = check_count(n_permutations, "n_permutations")
    L = model.config.n_layers
    if layers is None:
        layers = list(range(L))
    elif isinstance(layers, (int, np.integer)):
        raise TypeError(f"layers must be a list of block indices, e.g. [{layers}], got an int")
    else:
        layers = [check_index(l, L, "layers entry", f" ({L} layers)") for l in layers]
    rng = np.random.default_rng(check_seed(seed))
    x = model_inputs(model, token_ids, mask, token_type_ids)
    hidden, trace = x.run_with_trace(model, keep="blocks.0.attn.mask")
    clean = np.asarray(metric(hidden))
    allowed = trace["blocks.0.attn.mask"]  # the same in every block
    changes = []
    for _ in range(n_permutations):
        patch = permute_attention_patch(layers, allowed, rng)
        hidden = x.run(model, patch=patch)
        changes.append(np.asarray(metric(hidden)) - clean)
    return np.stack(changes)
