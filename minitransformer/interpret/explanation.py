"""Is attention an explanation? The classroom experiments of Jain & Wallace (2019) and
Wiegreffe & Pinter (2019).

An attention map shows where each query *read*; it is tempting to read it as *why* the model
answered. Four experiments test that reading:

1. **Permute the weights** (Jain & Wallace): shuffle each query's weights over its keys and
   measure the output change -- :func:`~minitransformer.interpret.interventions.
   attention_permutation_effect`. A small change although attention is peaked means the
   output does not depend on *where* the weight goes.
2. **Freeze attention to uniform and retrain** (Wiegreffe & Pinter's uniform baseline): every head
   of every block uses ``A[b, h, i, j] = m[b, j] / sum_j' m[b, j']`` (``m`` the padding mask:
   each query reads every real token equally) while the rest of the model trains
   (:func:`train_with_uniform_attention`). If accuracy holds, the task never needed the learned
   pattern, and that pattern explains nothing the average would not. The frozen weights are
   constants: the gradient reaches ``v`` through them but not ``q``, ``k`` (``W_Q``, ``W_K``
   get no gradient; ``backward(..., constants=)``).
3. **The twin task over several seeds** (:func:`twin_seeds_experiment`): equally accurate
   models attend to the twin or *avoid* it, while occlusion (replacing the token) finds the twin
   either way; Integrated Gradients does too with a baseline that keeps the query's own token,
   but from an all-padding baseline it is near chance on the avoiding models. Attention is one
   explanation among many the model could have used.
4. **Do explanations agree?** (:func:`compare_rankings`): Spearman's rho between the token
   rankings of attention, gradient x input, Integrated Gradients and occlusion (Jain &
   Wallace compare attention with gradients and leave-one-out by Kendall's tau; Spearman's
   rho, as in :mod:`~minitransformer.interpret.compare`, asks the same question).

Measured on the shipped toy models (``benchmarks/explanation.py``): retrained with uniform
attention, the diffuse tasks keep their accuracy (histogram, sort, brackets: 1.000) and the
crisp ones lose it (reverse 0.31, pointer 0.33, shift 0.30, twin 0.14); yet shuffling the
attention of the *trained* diffuse models destroys their answers too -- a model that did not
need a pattern may still come to rely on the one it learned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.interpret.attribution import (
    gradient_x_input,
    integrated_gradients,
    occlusion,
)
from minitransformer.interpret.compare import mean_std_defined, spearman_or_nan
from minitransformer.interpret.inputs import every_sequence_real, model_inputs
from minitransformer.interpret.objectives import Objective, class_logit
from minitransformer.interpret.stats import attention_weights
from minitransformer.tasks import Batch, Task, best_head, get_task
from minitransformer.toy_models import load_toy_model, toy_model_path
from minitransformer.training import History, evaluate, held_out, train_task

# ------------------------------------------------------------------- uniform attention


def uniform_attention(mask: Any, config: EncoderConfig) -> np.ndarray:
    """Attention weights that read every visible key equally: ndarray of shape (B, H, S, S).

    ``A[b, h, i, j] = allowed[b, i, j] / sum_j' allowed[b, i, j']`` with ``allowed`` = key j
    is a real token (and ``j <= i`` for a causal model) -- the weights a head with constant
    scores (``W_Q = W_K = 0``) computes. Every row sums to 1, padding rows included (they read
    the real tokens, as in the encoder).

    Parameters
    ----------
    mask : bool or 0/1 array of shape (B, S)
        1 for real tokens.
    config : EncoderConfig
        For ``n_heads``, ``causal`` and the dtype.
    """
    real = np.asarray(mask).astype(bool)
    if real.ndim != 2 or not real.any(axis=1).all():
        raise ValueError(
            f"mask must have shape (B, S) with a real token in every row, got {np.shape(mask)}"
        )
    B, S = real.shape
    allowed = np.broadcast_to(real[:, None, None, :], (B, config.n_heads, S, S))
    if config.causal:
        allowed = allowed & np.tril(np.ones((S, S), bool))
    counts = allowed.sum(axis=-1, keepdims=True)
    return (allowed / counts).astype(config.np_dtype)


def uniform_attention_patch(
    mask: Any, config: EncoderConfig, layers: Iterable[int] | None = None
) -> dict[str, np.ndarray]:
    """A ``patch=`` replacing ``blocks.{l}.attn.weights`` by :func:`uniform_attention`.

    Parameters
    ----------
    mask : array of shape (B, S)
    config : EncoderConfig
    layers : iterable of int, optional
        Which blocks (default all).
    """
    weights = uniform_attention(mask, config)
    blocks = range(config.n_layers) if layers is None else layers
    return {f"blocks.{l}.attn.weights": weights for l in blocks}


def uniform_attention_accuracy(model: Encoder, classifier: Classifier, batch: Batch) -> float:
    """Accuracy on ``batch`` with every block's attention replaced by uniform weights."""
    return evaluate(model, classifier, batch, patch=_uniform_for(model.config))[1]


def _uniform_for(config: EncoderConfig) -> Callable[[Batch], dict[str, np.ndarray]]:
    """The training loop's ``patch``: uniform attention over each batch's real tokens."""

    def patch(batch: Batch) -> dict[str, np.ndarray]:
        return uniform_attention_patch(batch.mask, config)

    return patch


def train_with_uniform_attention(
    task: Task | str, seed: int = 0, steps: int | None = None, progress: bool = False
) -> tuple[Encoder, Classifier, History]:
    """Train a fresh model on ``task`` with its attention frozen to uniform (Wiegreffe & Pinter).

    The same model, data and settings as :func:`~minitransformer.training.train_task`, but
    every block's ``attn.weights`` is :func:`uniform_attention` in the forward pass of every
    training and validation batch, and a constant in the backward pass. The history's
    ``val_acc`` is the accuracy *with* uniform attention (evaluate the model later with
    :func:`uniform_attention_accuracy`; without the patch its untrained W_Q, W_K would attend
    at random).

    Parameters
    ----------
    task : Task or str
    seed : int
        Seeds the initial weights and the batches (the same as ``train_task`` with this seed).
    steps : int, optional
        Default: the task's own number of steps.
    progress : bool

    Returns
    -------
    model, classifier, history
    """
    task = get_task(task) if isinstance(task, str) else task
    return train_task(task, seed, steps, progress, patch=_uniform_for(task.config))


@dataclass(frozen=True)
class UniformAttentionResult:
    """Held-out accuracy of one task trained with learned and with uniform attention.

    Attributes
    ----------
    task : str
    steps : int
        Training steps of both runs.
    learned, uniform : float
        Accuracy of the normally trained model and of the one trained with uniform attention.
    """

    task: str
    steps: int
    learned: float
    uniform: float

    @property
    def kept(self) -> float:
        """``uniform / learned``: the share of the accuracy uniform attention keeps."""
        return self.uniform / max(self.learned, 1e-12)


def uniform_attention_experiment(
    tasks: Iterable[str], steps: int | None = None, seed: int = 0
) -> list[UniformAttentionResult]:
    """Train each task twice with the same seed and steps: learned vs uniform attention.

    Parameters
    ----------
    tasks : iterable of task names
    steps : int, optional
        Default: each task's own number of steps.
    seed : int

    Returns
    -------
    list of UniformAttentionResult, one per task.
    """
    results = []
    for name in tasks:
        task = get_task(name)
        n_steps = task.settings.steps if steps is None else steps
        model, classifier, _ = train_task(task, seed=seed, steps=n_steps, progress=False)
        learned = evaluate(model, classifier, held_out(task))[1]
        model, classifier, _ = train_with_uniform_attention(task, seed=seed, steps=n_steps)
        uniform = uniform_attention_accuracy(model, classifier, held_out(task))
        results.append(UniformAttentionResult(task.name, n_steps, learned, uniform))
    return results


def uniform_attention_table(results: Sequence[UniformAttentionResult]) -> str:
    """The results as a printable table: task, steps, both accuracies, share kept."""
    lines = [f"{'task':<10} {'steps':>6} {'learned':>8} {'uniform':>8} {'kept':>6}"]
    for r in results:
        lines.append(
            f"{r.task:<10} {r.steps:>6} {r.learned:>8.3f} {r.uniform:>8.3f} {r.kept:>6.0%}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- twin task


@dataclass(frozen=True)
class TwinSeedResult:
    """One twin-task model: its accuracy, its attention, and what the attributions find.

    Each ``*_first`` is the share of (sequence, query position i) pairs where that method
    ranks the twin of i first among the *other* positions (j != i); for the attributions the
    explained output is the logit of the twin's position at i.

    Attributes
    ----------
    seed : int
    accuracy : float
        Held-out accuracy.
    attention_on_twin : float
        The best head's share of attention on the twin, ``mean_i A[i, twin(i)]``
        (:func:`~minitransformer.tasks.pattern_score`).
    attention_first, occlusion_first, gradient_x_input_first, integrated_gradients_first
        : float
    """

    seed: int
    accuracy: float
    attention_on_twin: float
    attention_first: float
    occlusion_first: float
    gradient_x_input_first: float
    integrated_gradients_first: float


def twin_analysis(
    model: Encoder,
    classifier: Classifier,
    seed: int = 0,
    n: int = 16,
    ig_steps: int = 20,
    occlude_with: int | None = 0,
) -> TwinSeedResult:
    """Measure one twin-task model (see :class:`TwinSeedResult`).

    Accuracy and attention use the 512 held-out examples; the attributions use the first
    ``n`` of them, every position of each. Occlusion puts ``occlude_with`` in place of a
    token (default 0, padding; None hides its key instead -- which cannot find a twin the
    model *avoids*: hiding a key that gets no attention changes nothing). Integrated
    Gradients starts from every token replaced by padding, with ``ig_steps`` intervals.
    """
    task = get_task("twin")
    data = held_out(task)
    hidden, trace = model.run_with_trace(data.token_ids, data.mask, keep="*.attn.weights")
    accuracy = task.score(classifier(hidden, data.mask), data)
    assert data.attention_target is not None
    on_twin = best_head(trace, data.attention_target).score
    A = attention_weights(trace)[-1].mean(axis=1)  # (B, S, S): last block, mean of heads
    firsts: dict[str, list[bool]] = {"attention": [], "occlusion": [], "gxi": [], "ig": []}
    S = data.token_ids.shape[1]
    for b in range(n):
        ids, twins = data.token_ids[b], data.targets[b]
        baseline = np.zeros_like(ids)  # every token -> PAD
        for i in range(S):
            objective = class_logit(classifier, classes=twins[i], position=i)
            others = np.arange(S) != i
            scores = {
                "attention": A[b, i],
                "occlusion": occlusion(model, ids, objective, replace_with=occlude_with),
                "gxi": gradient_x_input(model, ids, objective),
                "ig": integrated_gradients(model, ids, objective, baseline, steps=ig_steps).scores,
            }
            for name, s in scores.items():
                best = np.flatnonzero(others)[np.argmax(s[others])]
                firsts[name].append(bool(best == twins[i]))
    return TwinSeedResult(
        seed=seed,
        accuracy=float(accuracy),
        attention_on_twin=float(on_twin),
        attention_first=float(np.mean(firsts["attention"])),
        occlusion_first=float(np.mean(firsts["occlusion"])),
        gradient_x_input_first=float(np.mean(firsts["gxi"])),
        integrated_gradients_first=float(np.mean(firsts["ig"])),
    )


def twin_seeds_experiment(
    seeds: Iterable[int], steps: int | None = None, n: int = 16
) -> list[TwinSeedResult]:
    """Train the twin task with each seed and measure each model (:func:`twin_analysis`).

    With ``steps=None`` (the task's 1500 steps) a seed with a shipped checkpoint (0 and 4) is
    loaded instead of retrained -- the same weights.
    """
    results = []
    for seed in seeds:
        if steps is None and toy_model_path("twin", seed).is_file():
            model, classifier, _ = load_toy_model("twin", seed)
        else:
            model, classifier, _ = train_task("twin", seed=seed, steps=steps, progress=False)
        results.append(twin_analysis(model, classifier, seed=seed, n=n))
    return results


def twin_table(results: Sequence[TwinSeedResult]) -> str:
    """The per-seed results as a printable table."""
    lines = [
        f"{'seed':>4} {'accuracy':>8} {'attn on twin':>12} "
        f"{'twin ranked first by:':>22} {'attention':>9} {'occlusion':>9} {'grad x in':>9} "
        f"{'IG':>6}"
    ]
    for r in results:
        lines.append(
            f"{r.seed:>4} {r.accuracy:>8.3f} {r.attention_on_twin:>12.2f} {'':>22} "
            f"{r.attention_first:>9.0%} {r.occlusion_first:>9.0%} "
            f"{r.gradient_x_input_first:>9.0%} {r.integrated_gradients_first:>6.0%}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------ rankings


#: The methods :func:`compare_rankings` compares, in this order (IG: Integrated Gradients).
RANKING_METHODS = ("attention", "grad x input", "IG", "occlusion")


@dataclass(frozen=True)
class RankingAgreement:
    """Spearman's rho between every two methods' token scores, for each input.

    Attributes
    ----------
    methods : tuple of str
        :data:`RANKING_METHODS`.
    rho : ndarray of shape (n_examples, M, M)
        ``rho[b, m, n]``: rank correlation of methods m and n over input b's real tokens
        (1 on the diagonal; nan where a method's scores are constant over the input's real
        tokens, so rho is undefined).
    """

    methods: tuple[str, ...]
    rho: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """(M, M): the mean of rho over the inputs where it is defined; nan for a pair of
        methods whose rho is defined for no input."""
        M = len(self.methods)
        return np.array(
            [[mean_std_defined(self.rho[:, m, n])[0] for n in range(M)] for m in range(M)]
        )

    @property
    def n_defined(self) -> np.ndarray:
        """(M, M) int: for how many inputs each rho is defined (not nan)."""
        return (~np.isnan(self.rho)).sum(axis=0)

    def table(self) -> str:
        """The mean matrix as a printable table ("undef." where no input defines rho)."""
        width = max(len(m) for m in self.methods) + 2
        lines = [" " * width + "".join(f"{m:>{width}}" for m in self.methods)]
        for m, row in zip(self.methods, self.mean, strict=True):
            cells = ("undef." if np.isnan(v) else f"{v:.2f}" for v in row)
            lines.append(f"{m:<{width}}" + "".join(f"{c:>{width}}" for c in cells))
        undefined = int((self.n_defined < len(self.rho)).sum())
        if undefined:
            lines.append(
                f"({undefined} entries leave out inputs where a method's scores are constant)"
            )
        return "\n".join(lines)


def compare_rankings(
    model: Encoder,
    token_ids: Any,
    objective_of: Callable[[int], tuple[Objective, int]],
    mask: Any = None,
    *,
    baseline_ids: Any = None,
    ig_steps: int = 20,
    replace_with: int | None = None,
    token_type_ids: Any = None,
) -> RankingAgreement:
    """Do attention, gradient x input, Integrated Gradients and occlusion rank tokens alike?

    For each input b, with ``(F, i) = objective_of(b)``, the four token scores are: the
    last block's attention of query i averaged over heads, ``mean_h A[L-1, h, i, :]``; and
    :func:`gradient_x_input`, :func:`integrated_gradients` and :func:`occlusion` of F. Each
    pair of methods gets Spearman's rho over the real tokens (nan where one is constant).

    Parameters
    ----------
    model : Encoder
    token_ids, mask, token_type_ids : arrays of shape (B, S), or a BatchEncoding alone
    objective_of : callable
        ``objective_of(b) -> (objective, position)`` for input b.
    baseline_ids : int array of shape (B, S), optional
        Integrated Gradients' baseline; default every token replaced by id 0 (padding).
    ig_steps : int
    replace_with : int, optional
        Passed to :func:`occlusion` (None: hide the token's key).

    Returns
    -------
    RankingAgreement
    """
    x = every_sequence_real(model_inputs(model, token_ids, mask, token_type_ids))
    base = np.zeros_like(x.token_ids) if baseline_ids is None else np.asarray(baseline_ids)
    if base.shape != x.shape:
        raise ValueError(f"baseline_ids must have shape {x.shape}, got {base.shape}")
    _, trace = x.run_with_trace(model, keep="*.attn.weights")
    A = attention_weights(trace)[-1].mean(axis=1)  # (B, S, S)
    M = len(RANKING_METHODS)
    rho = np.zeros((len(x), M, M))
    for b in range(len(x)):
        objective, i = objective_of(b)
        one = x.rows(b)
        ids, real, types = one.token_ids, one.mask, one.token_type_ids
        scores = [
            A[b, i],
            gradient_x_input(model, ids, objective, real, token_type_ids=types),
            integrated_gradients(
                model, ids, objective, base[b], real, ig_steps, token_type_ids=types
            ).scores,
            occlusion(model, ids, objective, real, replace_with=replace_with, token_type_ids=types),
        ]
        keep = x.mask[b]
        for m in range(M):
            for n in range(M):
                rho[b, m, n] = 1.0 if m == n else spearman_or_nan(scores[m][keep], scores[n][keep])
    return RankingAgreement(RANKING_METHODS, rho)
