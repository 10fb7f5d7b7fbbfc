"""Architecture experiments: train the same task with different encoders and compare them.

Change one thing at a time -- the number of heads, the positional encoding, where the
LayerNorm sits -- and keep everything else (data, optimiser, steps, seeds) the same. Then ask
three questions of every variant: does it learn the task (held-out accuracy), how fast (the
first evaluation at which it reaches a target accuracy), and does its attention do what the
algorithm needs (the best head's :func:`~minitransformer.tasks.pattern_score`)?

>>> results = compare_architectures(
...     "reverse",
...     {"1 head": {}, "4 heads": {"n_heads": 4}, "no positions": {"positional": "none"}},
...     steps=300,
... )  # doctest: +SKIP
>>> print(results_table(results))  # doctest: +SKIP
variant        seeds  accuracy  steps to 99%  pattern score  seconds
1 head             1     1.000           150          0.991      0.8
...

A variant is a dict of :class:`~minitransformer.config.EncoderConfig` fields that replace the
task's shipped config (``{}`` is the shipped model). ``{"scale_scores": False}`` trains without
the ``1/sqrt(d_head)`` scaling (raw ``q.k`` scores, in the forward and the backward pass).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.tasks import Task, get_task
from minitransformer.training import History, assess, held_out, train_with_settings
from minitransformer.validation import check_int, check_number

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(EncoderConfig))


@dataclass(frozen=True)
class Result:
    """One variant trained with one seed.

    Attributes
    ----------
    variant : str
        The variant's name (a key of the ``variants`` argument).
    seed : int
        Seed of the initial weights and the training batches.
    config : EncoderConfig
        The encoder that was trained.
    accuracy : float
        Held-out accuracy after training.
    steps_to_target : int or None
        The first evaluation step at which the held-out accuracy reached ``target``; None if
        it never did.
    pattern_score : float or None
        The best head's pattern score on held-out data (None for a task without a target
        matrix).
    layer, head : int or None
        Which head that is.
    seconds : float
        Wall-clock time of the training loop.
    history : History
        Loss and accuracy curves (``history.val_steps``, ``history.val_acc``, ...).
    model : Encoder
        The trained encoder, to look at its attention.
    classifier : Classifier
        The trained classification head.
    """

    variant: str
    seed: int
    config: EncoderConfig
    accuracy: float
    steps_to_target: int | None
    pattern_score: float | None
    layer: int | None
    head: int | None
    seconds: float
    history: History = dataclasses.field(repr=False)
    model: Encoder = dataclasses.field(repr=False)
    classifier: Classifier = dataclasses.field(repr=False)


def variant_config(base: EncoderConfig, overrides: Mapping[str, Any]) -> EncoderConfig:
    """``base`` with the fields in ``overrides`` replaced (checked by :class:`EncoderConfig`).

    Raises ``ValueError`` for a name that is not an :class:`EncoderConfig` field.
    """
    if not isinstance(overrides, Mapping):
        raise TypeError(
            f"a variant must be a dict of EncoderConfig fields, got {type(overrides).__name__}"
        )
    unknown = sorted(set(overrides) - set(CONFIG_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown EncoderConfig field(s) {unknown} in a variant; "
            f"fields are {list(CONFIG_FIELDS)}"
        )
    return dataclasses.replace(base, **overrides)


def steps_to_target(history: History, target: float) -> int | None:
    """The first evaluation step whose held-out accuracy is at least ``target`` (or None)."""
    for step, acc in zip(history.val_steps, history.val_acc, strict=True):
        if acc >= target:
            return step
    return None


def compare_architectures(
    task: Task | str,
    variants: Mapping[str, Mapping[str, Any]],
    *,
    steps: int | None = None,
    seeds: Iterable[int] = (0,),
    target: float = 0.99,
    eval_every: int | None = None,
    progress: bool = False,
) -> list[Result]:
    """Train every variant of the task's encoder with every seed, on the same data, and measure.

    Everything but the encoder's config is the task's shipped setting
    (:attr:`Task.settings <minitransformer.tasks.Task.settings>`): batch size, learning rate,
    warm-up, weight decay. The training batches depend only on the seed, so with the same
    seed every variant sees the same data in the same order.

    Parameters
    ----------
    task : Task or str
    variants : dict of name -> dict of EncoderConfig fields
        E.g. ``{"1 head": {"n_heads": 1}, "pre-norm": {"norm": "pre"}}``; ``{}`` trains the
        shipped config.
    steps : int, optional
        Optimiser steps per run (default: the task's).
    seeds : iterable of int
        One run per variant and seed.
    target : float
        The accuracy that counts as "learned" for :attr:`Result.steps_to_target`.
    eval_every : int, optional
        Evaluate on held-out data every this many steps (default: ``steps // 20``). Smaller
        values measure the speed of learning more finely and cost more.
    progress : bool
        Show a progress bar per run.

    Returns
    -------
    list of Result
        In the order variant by variant, seed by seed.
    """
    task = get_task(task) if isinstance(task, str) else task
    if not isinstance(task, Task):
        raise TypeError(f"task must be a Task or a task name, got {type(task).__name__}")
    if not isinstance(variants, Mapping) or not variants:
        raise ValueError(
            f"variants must be a non-empty dict of name -> overrides, got {variants!r}"
        )
    seeds = [check_int(f"seeds[{i}]", seed, 0) for i, seed in enumerate(seeds)]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    target = check_number("target", target, 0.0, 1.0, open_min=True)
    configs = {name: variant_config(task.config, overrides) for name, overrides in variants.items()}
    s = task.settings
    n_steps = s.steps if steps is None else check_int("steps", steps, 1)
    every = max(1, n_steps // 20) if eval_every is None else check_int("eval_every", eval_every, 1)
    val = held_out(task)
    results = []
    for name, config in configs.items():
        for seed in seeds:
            model = Encoder(config, seed=seed)
            classifier = Classifier(config.d_model, task.n_classes, seed=seed + 1)
            history = train_with_settings(
                model,
                classifier,
                task,
                s,
                n_steps,
                val_data=val,
                eval_every=every,
                seed=seed,
                progress=progress,
                desc=f"{name} (seed {seed})",
            )
            assessed = assess(model, classifier, task)
            results.append(
                Result(
                    variant=name,
                    seed=seed,
                    config=config,
                    accuracy=assessed.accuracy,
                    steps_to_target=steps_to_target(history, target),
                    pattern_score=assessed.pattern_score,
                    layer=assessed.layer,
                    head=assessed.head,
                    seconds=history.seconds,
                    history=history,
                    model=model,
                    classifier=classifier,
                )
            )
    return results


def results_table(results: Iterable[Result], target: float = 0.99) -> str:
    """A plain-text table with one row per variant, averaged over its seeds.

    "steps to 99%" is the mean over the seeds that reached the target, with ``(k/n)`` added
    when only k of n seeds did, and ``never`` when none did. ``target`` only labels the column:
    pass the value given to :func:`compare_architectures`.
    """
    by_variant: dict[str, list[Result]] = {}
    for result in results:
        by_variant.setdefault(result.variant, []).append(result)
    if not by_variant:
        raise ValueError("results is empty")
    width = max(len("variant"), *(len(name) for name in by_variant))
    column = f"steps to {target:.0%}"
    lines = [
        f"{'variant':<{width}}  seeds  accuracy  {column:>14}  pattern score  seconds",
    ]
    for name, runs in by_variant.items():
        reached = [r.steps_to_target for r in runs if r.steps_to_target is not None]
        if not reached:
            speed = "never"
        else:
            speed = f"{np.mean(reached):.0f}"
            if len(reached) < len(runs):
                speed += f" ({len(reached)}/{len(runs)})"
        scores = [r.pattern_score for r in runs if r.pattern_score is not None]
        pattern = f"{np.mean(scores):.3f}" if scores else "-"
        lines.append(
            f"{name:<{width}}  {len(runs):>5}  {np.mean([r.accuracy for r in runs]):>8.3f}  "
            f"{speed:>14}  {pattern:>13}  {np.mean([r.seconds for r in runs]):>7.1f}"
        )
    return "\n".join(lines)
