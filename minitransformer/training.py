"""Training an encoder and a classification head: the loop, its history, and its callbacks.

One training step is the whole of backpropagation in five lines (:func:`train_step`)::

    hidden, trace = model.run_with_trace(ids, mask, training=True)    # forward, recording
    logits = classifier(hidden, mask)
    loss, g_logits = cross_entropy(logits, targets)                    # loss and dL/dlogits
    g_head, g_hidden = classifier.backward(g_logits, hidden, mask)     # through the head
    g_model = backward(model, trace, g_hidden).params                  # through the encoder
    optimizer.step(clip(g_model + g_head), lr)                         # AdamW update

:func:`train` repeats it with a learning-rate schedule, evaluates on held-out data, keeps a
:class:`History`, stops early when the validation loss stops improving, and calls callbacks --
e.g. :class:`AttentionSnapshots`, which records every head's attention on a fixed probe input
as training goes, so a figure can show the heads forming.

:func:`overfitting_report` trains the same model on a tiny and on a large training set and
returns the numbers that show overfitting: the validation loss turning up while the training
loss goes to 0, and attention that matches the algorithm on training inputs but not on
held-out ones.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minitransformer import kernels
from minitransformer.backprop import Gradients, backward
from minitransformer.encoder import Encoder
from minitransformer.heads import IGNORE_INDEX, Classifier, accuracy, cross_entropy
from minitransformer.optim import AdamW, clip_grad_norm, global_norm, warmup_cosine_lr
from minitransformer.patching import Patch
from minitransformer.tasks import Batch, Task, TrainSettings, best_head, get_task
from minitransformer.validation import NonFiniteError, check_int, check_number

HEAD_PREFIX = "head."  # the classifier's parameters, next to the encoder's, in the optimiser

#: ``patch(batch) -> patch=`` mapping for the forward pass on ``batch``: attention weights to
#: use instead of the computed ones (e.g. uniform weights over the batch's real tokens).
BatchPatch = Callable[[Batch], Patch]


def value_and_grad(
    model: Encoder,
    loss: Callable[[np.ndarray], tuple[float, np.ndarray]],
    token_ids: Any,
    mask: Any = None,
    *,
    token_type_ids: Any = None,
    training: bool = False,
    rng: np.random.Generator | None = None,
    head_mask: Any = None,
) -> tuple[float, Gradients]:
    """Forward pass, loss, and backward pass in one call.

    Parameters
    ----------
    model : Encoder
    loss : callable
        ``loss(hidden) -> (value, dL/dhidden)``: the loss of the hidden states (B, S, D)
        and its gradient with respect to them, e.g. ``lambda h: ((h * R).sum(), R)``.
    token_ids, mask, token_type_ids, training, rng, head_mask
        As in :meth:`Encoder.run_with_trace`.

    Returns
    -------
    value : float
    gradients : Gradients
    """
    hidden, trace = model.run_with_trace(
        token_ids,
        mask,
        token_type_ids=token_type_ids,
        training=training,
        rng=rng,
        head_mask=head_mask,
    )
    value, grad_hidden = loss(hidden)
    return value, backward(model, trace, grad_hidden)


def parameters(model: Encoder, classifier: Classifier) -> dict[str, np.ndarray]:
    """The encoder's and the head's parameters in one dict (the same arrays, not copies).

    The head's names get the prefix ``"head."``: ``"head.W"``, ``"head.b"``.
    """
    params = dict(model.params)
    params.update({HEAD_PREFIX + name: value for name, value in classifier.params.items()})
    return params


def loss_and_grads(
    model: Encoder,
    classifier: Classifier,
    batch: Batch,
    training: bool = True,
    rng: np.random.Generator | None = None,
    patch: BatchPatch | None = None,
) -> tuple[float, float, dict[str, np.ndarray]]:
    """Forward, loss and backward on one batch.

    ``patch`` (optional) gives the batch's replacement attention weights
    (``"blocks.{l}.attn.weights"`` only): the forward pass uses them and the backward pass
    holds them constant (``backward(..., constants=)``), so the loss's gradient is exact for
    the patched model and ``W_Q``, ``W_K`` of a patched block get none.

    Returns
    -------
    loss : float
        Mean cross-entropy over the positions with a target.
    acc : float
        Accuracy over the same positions.
    grads : dict of name -> ndarray
        The gradient of every parameter, named as in :func:`parameters`.
    """
    replaced = {} if patch is None else dict(patch(batch))
    hidden, trace = model.run_with_trace(
        batch.token_ids, batch.mask, training=training, rng=rng, patch=replaced
    )
    logits = classifier(hidden, batch.mask)
    loss, grad_logits = cross_entropy(logits, batch.targets)
    grad_head, grad_hidden = classifier.backward(grad_logits, hidden, batch.mask)
    grads = backward(model, trace, grad_hidden, constants=replaced).params
    grads.update({HEAD_PREFIX + name: g for name, g in grad_head.items()})
    return loss, accuracy(logits, batch.targets), grads


def train_step(
    model: Encoder,
    classifier: Classifier,
    batch: Batch,
    optimizer: AdamW,
    lr: float | None = None,
    clip_norm: float | None = 1.0,
    rng: np.random.Generator | None = None,
    patch: BatchPatch | None = None,
) -> tuple[float, float, float]:
    """One step of gradient descent on ``batch``: forward, backward, clip, optimiser update.

    ``optimizer`` must hold :func:`parameters` ``(model, classifier)``. ``patch``: as in
    :func:`loss_and_grads`.

    Returns
    -------
    loss, acc : float
        Of the batch, before the update.
    grad_norm : float
        Global gradient norm before clipping.

    Raises
    ------
    NonFiniteError
        If the forward pass, the loss or a gradient holds inf or NaN; the parameters are then
        left as they were.
    """
    with kernels.switched_off():  # training is pure NumPy: the same run with or without numba
        loss, acc, grads = loss_and_grads(
            model, classifier, batch, training=True, rng=rng, patch=patch
        )
    if not math.isfinite(loss):
        raise NonFiniteError(f"the loss is {loss}")
    if clip_norm is None:
        grad_norm = global_norm(grads)
    else:
        grads, grad_norm = clip_grad_norm(grads, clip_norm)
    optimizer.step(grads, lr=lr)  # checks that every gradient is finite before any update
    return loss, acc, grad_norm


def evaluate(
    model: Encoder,
    classifier: Classifier,
    batch: Batch,
    batch_size: int = 512,
    patch: BatchPatch | None = None,
) -> tuple[float, float]:
    """Loss and accuracy on ``batch`` (no dropout, no gradients), over every scored position.

    ``patch``: as in :func:`loss_and_grads`, applied to each part of ``batch_size`` examples.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    _check_data("batch", batch)
    total_loss, correct, scored = 0.0, 0, 0
    for start in range(0, len(batch), batch_size):
        part = batch.select(slice(start, start + batch_size))
        n = int((part.targets != IGNORE_INDEX).sum())
        if n == 0:  # nothing to score in this part (the whole batch has targets: checked)
            continue
        replaced = None if patch is None else patch(part)
        logits = classifier(model(part.token_ids, part.mask, patch=replaced), part.mask)
        total_loss += cross_entropy(logits, part.targets)[0] * n
        correct += round(accuracy(logits, part.targets) * n)
        scored += n
    return total_loss / scored, correct / scored


# ------------------------------------------------------------------------------ history


@dataclass
class History:
    """What happened during :func:`train`.

    Attributes
    ----------
    steps, train_loss, train_acc, lr, grad_norm : list
        One entry per optimiser step (``steps`` counts from 1): the training batch's loss and
        accuracy before the update, the learning rate used, the gradient norm before clipping.
    val_steps, val_loss, val_acc : list
        One entry per evaluation on the validation data.
    best_step : int or None
        The step with the lowest validation loss.
    stopped_early : bool
        True if early stopping ended training before ``steps``.
    seconds : float
        Wall-clock time of the loop.
    """

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_step: int | None = None
    stopped_early: bool = False
    seconds: float = 0.0


class Callback:
    """Something :func:`train` calls after every step (and once before the first, at step 0).

    Override :meth:`on_step`; ``model`` and ``classifier`` hold the current parameters.
    """

    def on_step(self, step: int, model: Encoder, classifier: Classifier, history: History) -> None:
        """Called with the number of optimiser steps taken so far."""

    def on_end(self, step: int, model: Encoder, classifier: Classifier, history: History) -> None:
        """Called once when training ends, with the last step."""


class AttentionSnapshots(Callback):
    """Record every head's attention on a fixed probe input every ``every`` steps.

    Parameters
    ----------
    probe_ids : int array of shape (S,) or (1, S)
        One input sequence, the same at every snapshot.
    every : int
        Snapshot at steps 0, every, 2 * every, ... and at the last step.
    mask : bool array of shape (S,) or (1, S), optional

    Attributes
    ----------
    steps : list of int
        The steps of the snapshots.
    weights : ndarray of shape (n_snapshots, n_layers, n_heads, S, S)
        The attention weights at each snapshot (property; stacked on access).
    """

    def __init__(self, probe_ids: Any, every: int = 50, mask: Any = None):
        ids = np.asarray(probe_ids)
        if ids.ndim == 2 and ids.shape[0] == 1:
            ids = ids[0]
        if ids.ndim != 1:
            raise ValueError(
                f"probe_ids must be one sequence, shape (S,), got {np.shape(probe_ids)}"
            )
        self.probe_ids, self.every = ids, check_int("every", every, 1)
        self.mask = None if mask is None else np.asarray(mask).reshape(1, -1)
        self.steps: list[int] = []
        self._weights: list[np.ndarray] = []

    def on_step(self, step: int, model: Encoder, classifier: Classifier, history: History) -> None:
        if step % self.every == 0:
            self._snapshot(step, model)

    def on_end(self, step: int, model: Encoder, classifier: Classifier, history: History) -> None:
        if not self.steps or self.steps[-1] != step:
            self._snapshot(step, model)

    def _snapshot(self, step: int, model: Encoder) -> None:
        _, trace = model.run_with_trace(self.probe_ids, self.mask, keep="*.attn.weights")
        layers = [trace[f"blocks.{l}.attn.weights"][0] for l in range(trace.n_layers)]
        self.steps.append(step)
        self._weights.append(np.stack(layers))  # (n_layers, n_heads, S, S)

    @property
    def weights(self) -> np.ndarray:
        return np.stack(self._weights)


# -------------------------------------------------------------------------------- train


def train(
    model: Encoder,
    classifier: Classifier,
    data: Task | Batch,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    warmup_steps: int = 0,
    min_lr: float = 0.0,
    weight_decay: float = 0.0,
    clip_norm: float | None = 1.0,
    val_data: Batch | None = None,
    eval_every: int = 100,
    patience: int | None = None,
    callbacks: Iterable[Callback] = (),
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
    blas_threads: int | None = 1,
    patch: BatchPatch | None = None,
) -> History:
    """Train ``model`` and ``classifier`` in place with AdamW and a warm-up + cosine schedule.

    Parameters
    ----------
    model : Encoder
    classifier : Classifier
    data : Task or Batch
        A :class:`~minitransformer.tasks.Task` draws a fresh batch every step (endless data);
        a :class:`~minitransformer.tasks.Batch` is a fixed training set that batches are
        drawn from at random (with ``batch_size`` capped at its size).
    steps : int
        Number of optimiser steps.
    batch_size, lr, warmup_steps, min_lr, weight_decay, clip_norm
        The batch size, peak learning rate, warm-up length, final learning rate, AdamW weight
        decay and the gradient-norm limit (None: no clipping).
    val_data : Batch, optional
        Held-out data, evaluated every ``eval_every`` steps and at the end.
    patience : int, optional
        Early stopping: stop after this many evaluations without a lower validation loss,
        and restore the parameters of the best evaluation. Needs ``val_data``.
    callbacks : iterable of Callback
    seed : int
        Seeds the training batches and dropout.
    progress : bool
        Show a progress bar (``tqdm.auto``: a widget in notebooks, text in a terminal).
    desc : str
        The progress bar's label.
    blas_threads : int or None
        Threads for NumPy's matrix products while training (None: leave as is). The toy
        models' matrices are so small that starting threads costs more than it saves -- on a
        busy machine, ten times more -- so the default is 1. Needs ``threadpoolctl``;
        without it the setting is ignored.
    patch : callable, optional
        ``patch(batch)`` -> replacement attention weights for the forward pass on ``batch``
        (see :func:`loss_and_grads`), in training and in evaluation: e.g. attention frozen to
        uniform (:func:`minitransformer.interpret.explanation.uniform_attention_patch`).

    Returns
    -------
    History

    Raises
    ------
    NonFiniteError
        If the loss, a gradient or the forward pass becomes inf or NaN: the message names the
        step and the likely cause (a learning rate too high, at any step after the first).
        The parameters keep the values of the last good step.
    """
    steps = check_int("steps", steps, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_number("lr", lr, 0.0, open_min=True)
    warmup_steps = check_int("warmup_steps", warmup_steps, 0, steps)
    min_lr = check_number("min_lr", min_lr, 0.0, lr)
    weight_decay = check_number("weight_decay", weight_decay, 0.0)
    if clip_norm is not None:
        clip_norm = check_number("clip_norm", clip_norm, 0.0, open_min=True)
    eval_every = check_int("eval_every", eval_every, 1)
    seed = check_int("seed", seed, 0)
    if patience is not None:
        patience = check_int("patience", patience, 1)
    if blas_threads is not None:
        blas_threads = check_int("blas_threads", blas_threads, 1)
    if not isinstance(data, (Task, Batch)):
        raise TypeError(f"data must be a Task or a Batch, got {type(data).__name__}")
    if isinstance(data, Batch):
        _check_data("data", data)
    if val_data is not None:
        _check_data("val_data", val_data)
    if patience is not None and val_data is None:
        raise ValueError("patience (early stopping) needs val_data")
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must be Callback objects, got {type(callback).__name__}")
    # BLAS threads restored when the block ends; evaluations and callbacks in pure NumPy too,
    # as train_step, so that a run and its history are the same with or without numba
    with _limit_blas_threads(blas_threads), kernels.switched_off():
        rng = np.random.default_rng(seed)
        params = parameters(model, classifier)
        optimizer = AdamW(params, lr=lr, weight_decay=weight_decay)
        history = History()
        best_loss, best_params, evals_since_best = np.inf, None, 0
        start = time.perf_counter()
        for callback in callbacks:
            callback.on_step(0, model, classifier, history)
        bar = _progress_bar(steps, desc, progress)
        step = 0
        for step in range(1, steps + 1):
            batch = _next_batch(data, batch_size, rng)
            step_lr = warmup_cosine_lr(step - 1, steps, lr, warmup_steps, min_lr)
            try:
                loss, acc, grad_norm = train_step(
                    model, classifier, batch, optimizer, step_lr, clip_norm, rng, patch
                )
            except NonFiniteError as error:
                if bar is not None:
                    bar.close()
                raise NonFiniteError(_diverged(step, step_lr, lr, error)) from error
            history.steps.append(step)
            history.train_loss.append(loss)
            history.train_acc.append(acc)
            history.lr.append(step_lr)
            history.grad_norm.append(grad_norm)
            stop = False
            if val_data is not None and (step % eval_every == 0 or step == steps):
                val_loss, val_acc = evaluate(model, classifier, val_data, patch=patch)
                history.val_steps.append(step)
                history.val_loss.append(val_loss)
                history.val_acc.append(val_acc)
                if val_loss < best_loss:
                    best_loss, evals_since_best, history.best_step = val_loss, 0, step
                    if patience is not None:
                        best_params = {name: p.copy() for name, p in params.items()}
                else:
                    evals_since_best += 1
                    stop = patience is not None and evals_since_best >= patience
            for callback in callbacks:
                callback.on_step(step, model, classifier, history)
            if bar is not None:
                bar.update(1)
                if step % 10 == 0 or step == steps:
                    bar.set_postfix(_postfix(history), refresh=False)
            if stop:
                history.stopped_early = True
                break
        if bar is not None:
            bar.close()
        if best_params is not None and history.stopped_early:
            for name, p in params.items():
                p[...] = best_params[name]  # in place: the model and head see the best values
        history.seconds = time.perf_counter() - start
        for callback in callbacks:
            callback.on_end(step, model, classifier, history)
        return history


def _diverged(step: int, step_lr: float, lr: float, error: NonFiniteError) -> str:
    """Why training stopped at ``step``, with the likely cause."""
    if step == 1:  # nothing was updated yet: the starting point itself is broken
        cause = (
            "this is the first step, before any update, so the initial parameters or the data "
            "are the cause, not the learning rate"
        )
    else:
        cause = (
            f"the likely cause is a learning rate too high (this step used {step_lr:.3g}, peak "
            f"lr={lr:.3g}): the parameters grew until the numbers overflowed. Try a smaller "
            "lr, a warm-up (warmup_steps) or gradient clipping (clip_norm)"
        )
    return f"training stopped at step {step}: {error}. {cause}"


def _check_data(name: str, batch: Batch) -> None:
    """A Batch with at least one example and one target to score."""
    if not isinstance(batch, Batch):
        raise TypeError(f"{name} must be a Batch, got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError(f"{name} holds no examples")
    if not (np.asarray(batch.targets) != IGNORE_INDEX).any():
        raise ValueError(f"{name} has no target to score: every target is {IGNORE_INDEX}")


def _limit_blas_threads(n: int | None) -> contextlib.AbstractContextManager[Any]:
    """A context limiting BLAS to ``n`` threads, if ``threadpoolctl`` is installed."""
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def _next_batch(data: Task | Batch, batch_size: int, rng: np.random.Generator) -> Batch:
    if isinstance(data, Task):
        return data.generate(batch_size, rng)
    size = min(batch_size, len(data))
    return data.select(rng.choice(len(data), size=size, replace=False))


def _progress_bar(steps: int, desc: str, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm  # a notebook widget under Jupyter, a text bar elsewhere

    return tqdm(total=steps, desc=desc, unit="step")


def _postfix(history: History) -> dict[str, str]:
    recent = slice(-10, None)
    postfix = {
        "loss": f"{np.mean(history.train_loss[recent]):.3f}",
        "acc": f"{np.mean(history.train_acc[recent]):.3f}",
    }
    if history.val_acc:
        postfix["val_acc"] = f"{history.val_acc[-1]:.3f}"
    return postfix


# --------------------------------------------------------------------- tasks, end to end


def make_model(task: Task | str, seed: int = 0) -> tuple[Encoder, Classifier]:
    """A freshly initialised encoder and per-token head of the task's size."""
    task = get_task(task) if isinstance(task, str) else task
    model = Encoder(task.config, seed=seed)
    classifier = Classifier(task.config.d_model, task.n_classes, seed=seed + 1)
    return model, classifier


VALIDATION_SEED = 12345  # seed of every task's held-out data (training batches use others)


def held_out(task: Task | str, n: int = 512) -> Batch:
    """The task's fixed held-out data: ``n`` examples from :data:`VALIDATION_SEED`."""
    task = get_task(task) if isinstance(task, str) else task
    return task.generate(n, VALIDATION_SEED)


def train_with_settings(
    model: Encoder,
    classifier: Classifier,
    data: Task | Batch,
    settings: TrainSettings,
    steps: int,
    **options: Any,
) -> History:
    """:func:`train` with a task's batch size, learning rate, warm-up (cut to ``steps``) and
    weight decay; ``options`` are :func:`train`'s others (``val_data``, ``seed``, ...) or
    replace these."""
    settings_options = {
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "warmup_steps": min(settings.warmup_steps, steps),
        "weight_decay": settings.weight_decay,
    }
    return train(model, classifier, data, steps=steps, **{**settings_options, **options})


def train_task(
    task: Task | str,
    seed: int = 0,
    steps: int | None = None,
    progress: bool = True,
    callbacks: Iterable[Callback] = (),
    patch: BatchPatch | None = None,
) -> tuple[Encoder, Classifier, History]:
    """Train a fresh model on a task with its shipped settings (how the checkpoints were made).

    Parameters
    ----------
    task : Task or str
    seed : int
        Seeds the initial weights and the training batches.
    steps : int, optional
        Override the task's number of steps.
    progress : bool
    callbacks : iterable of Callback
    patch : function of a Batch, optional
        Replaces attention weights in every forward pass, held constant in the backward pass
        (see :func:`train`); e.g. uniform attention in
        :func:`minitransformer.interpret.explanation.train_with_uniform_attention`.

    Returns
    -------
    model, classifier, history
    """
    task = get_task(task) if isinstance(task, str) else task
    s = task.settings
    model, classifier = make_model(task, seed)
    n_steps = s.steps if steps is None else steps
    history = train_with_settings(
        model,
        classifier,
        task,
        s,
        n_steps,
        val_data=held_out(task),
        eval_every=max(1, n_steps // 10),
        callbacks=callbacks,
        seed=seed,
        progress=progress,
        desc=task.name if patch is None else f"{task.name} (attention patched)",
        patch=patch,
    )
    return model, classifier, history


@dataclass(frozen=True)
class TaskResult:
    """Held-out accuracy and best-head pattern score of a trained model on its task."""

    accuracy: float
    pattern_score: float | None  # None for a task without a target matrix
    layer: int | None
    head: int | None


def assess(model: Encoder, classifier: Classifier, task: Task | str, n: int = 512) -> TaskResult:
    """Accuracy on the held-out data and the best head's :func:`~tasks.pattern_score`."""
    task = get_task(task) if isinstance(task, str) else task
    batch = held_out(task, n)
    hidden, trace = model.run_with_trace(batch.token_ids, batch.mask, keep="*.attn.weights")
    acc = task.score(classifier(hidden, batch.mask), batch)
    if batch.attention_target is None:
        return TaskResult(acc, None, None, None)
    best = best_head(trace, batch.attention_target)
    return TaskResult(acc, best.score, best.layer, best.head)


# -------------------------------------------------------------------------- overfitting


@dataclass(frozen=True)
class OverfittingReport:
    """Two runs of the same model, on a tiny and on a large training set.

    Attributes
    ----------
    small, large : History
        Their training histories (with validation curves).
    n_small, n_large : int
        Training-set sizes.
    min_val_loss_step : int
        Where the tiny set's validation loss was lowest; after it, the curve diverges.
    val_loss_rise : float
        Final minus lowest validation loss of the tiny set (> 0: it turned up).
    train_acc, val_acc : dict of "small"/"large" -> float
        Accuracy on each run's own training set and on held-out data.
    pattern_train, pattern_val : dict of "small"/"large" -> float
        Best-head pattern score on each run's training inputs and on held-out inputs: the
        overfit model's attention matches the algorithm on inputs it memorised, not on new
        ones.
    """

    small: History
    large: History
    n_small: int
    n_large: int
    min_val_loss_step: int
    val_loss_rise: float
    train_acc: dict[str, float]
    val_acc: dict[str, float]
    pattern_train: dict[str, float]
    pattern_val: dict[str, float]


def overfitting_report(
    task: Task | str = "reverse",
    n_small: int = 16,
    n_large: int = 4096,
    steps: int = 600,
    seed: int = 0,
    progress: bool = False,
) -> OverfittingReport:
    """Make overfitting visible: train on a tiny set and a large one, compare held-out numbers.

    The tiny set is memorised: training accuracy reaches 1 while the validation loss, after
    an early minimum, climbs (the curve "diverges"), and the attention the model learns fits
    its training inputs but not held-out ones. The large set generalises.

    Parameters
    ----------
    task : Task or str
        A task with a target matrix (for the pattern scores).
    n_small, n_large : int
        Sizes of the two training sets.
    steps, seed : int
    progress : bool

    Returns
    -------
    OverfittingReport
    """
    task = get_task(task) if isinstance(task, str) else task
    s = task.settings
    val = held_out(task)
    runs: dict[str, History] = {}
    train_acc, val_acc, pattern_train, pattern_val = {}, {}, {}, {}
    for label, n in (("small", n_small), ("large", n_large)):
        data = task.generate(n, seed=seed + 1000)
        model, classifier = make_model(task, seed)
        runs[label] = train_with_settings(
            model,
            classifier,
            data,
            s,
            steps,
            weight_decay=0.0,  # train's default: no weight decay, whatever the task's
            val_data=val,
            eval_every=max(1, steps // 30),
            seed=seed,
            progress=progress,
            desc=label,
        )
        train_acc[label] = evaluate(model, classifier, data)[1]
        val_acc[label] = evaluate(model, classifier, val)[1]
        pattern_train[label] = _best_pattern(model, data)
        pattern_val[label] = _best_pattern(model, val)
    small = runs["small"]
    lowest = int(np.argmin(small.val_loss))
    return OverfittingReport(
        small=small,
        large=runs["large"],
        n_small=n_small,
        n_large=n_large,
        min_val_loss_step=small.val_steps[lowest],
        val_loss_rise=small.val_loss[-1] - small.val_loss[lowest],
        train_acc=train_acc,
        val_acc=val_acc,
        pattern_train=pattern_train,
        pattern_val=pattern_val,
    )


def _best_pattern(model: Encoder, batch: Batch) -> float:
    if batch.attention_target is None:
        raise ValueError("overfitting_report needs a task with an attention target matrix")
    _, trace = model.run_with_trace(batch.token_ids, batch.mask, keep="*.attn.weights")
    return best_head(trace, batch.attention_target).score
