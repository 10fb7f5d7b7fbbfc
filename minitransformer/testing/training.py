"""Checks for the training exercises: early stopping's best step, and a callback of one's own.

Both run on hand-made :class:`~minitransformer.training.History` objects whose numbers are
chosen to separate the right answer from the slips: evaluation steps that are not 0, 1, 2, ...,
a tie for the lowest loss, a training loss whose minimum is elsewhere, a gradient norm exactly
at the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.testing.checker import Checker, Mistake, learner_check
from minitransformer.training import History


def _history(val_steps: list[int], val_loss: list[float], train_loss: list[float]) -> History:
    history = History(val_steps=list(val_steps), val_loss=list(val_loss))
    history.steps = list(range(1, len(train_loss) + 1))
    history.train_loss = list(train_loss)
    history.best_step = val_steps[0] + 1  # not the answer: `train` computes it, here it is wrong
    return history


@learner_check
def check_best_step(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check ``best_step(history)``: the entry of ``history.val_steps`` where
    ``history.val_loss`` is lowest, the first one on a tie.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: the index returned instead of the step, the last of tied
        minima, the highest loss, the training loss's minimum, the loss itself, the
        ``best_step`` attribute that ``train`` fills in.
    """
    c = Checker(fn, "best_step", verbose)
    cases = [
        (
            "evaluations every 25 steps, the lowest held-out loss at step 75",
            _history([25, 50, 75, 100, 125], [2.0, 1.2, 0.9, 1.1, 1.6], [3, 2, 1, 0.5, 0.1]),
        ),
        (
            "a tie: the lowest loss at steps 30 and 70",
            _history([10, 30, 50, 70, 90], [1.5, 0.8, 1.0, 0.8, 2.0], [2, 1, 0.2, 0.4, 0.9]),
        ),
        (
            "the lowest loss at the first evaluation",
            _history([5, 10, 15, 20], [0.3, 0.5, 0.7, 0.9], [0.9, 0.2, 0.5, 0.6]),
        ),
    ]
    for title, history in cases:
        with c.case(title):
            got = c.number(c.call({"history": history}))
            losses = np.array(history.val_loss)
            first = int(np.argmin(losses))
            last = int(np.flatnonzero(losses == losses.min())[-1])
            c.compare(
                got,
                np.asarray(float(history.val_steps[first])),
                [
                    Mistake(
                        "best_step_index",
                        "You returned the position of the lowest loss in the list, not its "
                        "step: look the index up in `history.val_steps`.",
                        np.asarray(float(first)),
                    ),
                    Mistake(
                        "best_step_last_tie",
                        "On a tie you returned the last of the lowest losses; early stopping "
                        "keeps the first (`np.argmin` returns the first).",
                        np.asarray(float(history.val_steps[last])),
                    ),
                    Mistake(
                        "best_step_highest",
                        "You returned the step of the highest held-out loss: the best step "
                        "has the lowest (`np.argmin`, not `np.argmax`).",
                        np.asarray(float(history.val_steps[int(np.argmax(losses))])),
                    ),
                    Mistake(
                        "best_step_training_loss",
                        "You looked at the training loss; early stopping watches the held-out "
                        "loss, `history.val_loss` (the training loss keeps falling while the "
                        "model memorises).",
                        np.asarray(float(history.steps[int(np.argmin(history.train_loss))])),
                    ),
                    Mistake(
                        "best_step_loss_value",
                        "You returned the lowest loss itself; return the step where it occurred.",
                        np.asarray(losses.min()),
                    ),
                    Mistake(
                        "best_step_attribute",
                        "You returned `history.best_step`, which `train` fills in; compute it "
                        "from `history.val_steps` and `history.val_loss`.",
                        np.asarray(float(history.best_step or 0)),
                    ),
                ],
            )
    return c.passed()


@learner_check
def check_gradient_spikes(cls: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a ``GradientSpikes(threshold)`` callback: after a run, ``.steps`` lists the steps
    whose gradient norm (``history.grad_norm[-1]`` at that step) is above ``threshold``.

    The callback is driven by hand, the way :func:`~minitransformer.train` drives it: step 0
    first (no gradient yet, ``history.grad_norm`` empty), then steps 1, 2, ... each after its
    gradient norm was appended.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: step 0 not skipped (an IndexError), ``>=`` instead of ``>``,
        the norms recorded instead of the steps, the training loss watched instead, the wrong
        entry of ``grad_norm`` read.
    """
    c = Checker(cls, "GradientSpikes", verbose)
    c.own_names.add("on_step")  # the stub's NotImplementedError is raised in on_step
    norms = [0.4, 1.0, 1.7, 0.2, 3.0, 1.05, 0.9, 2.5]
    losses = [2.0, 1.5, 0.8, 1.2, 0.6, 2.2, 0.3, 0.2]
    threshold = 1.0
    step_zero_hint = (
        "At step 0 no step has been taken yet: `history.grad_norm` is empty, so "
        "`history.grad_norm[-1]` raises IndexError. Skip step 0 (`if step > 0 and ...`)."
    )
    with c.case(f"8 steps, gradient norms {norms}, threshold {threshold}"):
        callback = c.call({"threshold": threshold})
        history = History()
        c.call({"step": 0, "model": None, "classifier": None, "history": history},
               target=callback.on_step, error_hint=step_zero_hint)  # fmt: skip
        for step, (norm, loss) in enumerate(zip(norms, losses, strict=True), start=1):
            history.steps.append(step)
            history.grad_norm.append(norm)
            history.train_loss.append(loss)
            args = {"step": step, "model": None, "classifier": None, "history": history}
            c.call(args, target=callback.on_step, error_hint=step_zero_hint)
        got = getattr(callback, "steps", None)
        if not isinstance(got, list):
            raise c.fail(
                f"Your {c.name} has no list `self.steps` after the run (found "
                f"{type(got).__name__}); create it in `__init__`: `self.steps = []`.",
                "no_steps_list",
            )
        try:
            got_array = np.array(got, dtype=float)
        except (TypeError, ValueError):
            raise c.fail(
                f"Your {c.name}.steps holds {got[:3]}..., not step numbers.", "not_a_number"
            ) from None
        norm_array = np.array(norms)
        steps = np.arange(1, len(norms) + 1)

        def steps_where(selected: np.ndarray) -> np.ndarray:
            return steps[selected].astype(float)

        c.compare(
            got_array,
            steps_where(norm_array > threshold),
            [
                Mistake(
                    "spikes_at_threshold",
                    f"You also kept step 2, whose norm is exactly {threshold}: the callback "
                    "keeps the norms *above* the threshold (`>`, not `>=`).",
                    steps_where(norm_array >= threshold),
                ),
                Mistake(
                    "spikes_norms",
                    "Your list holds the gradient norms; it should hold the steps where "
                    "they were above the threshold: `self.steps.append(step)`.",
                    norm_array[norm_array > threshold],
                ),
                Mistake(
                    "spikes_loss",
                    "You watched the training loss (`history.train_loss`); the gradient norm is "
                    "`history.grad_norm[-1]`.",
                    steps_where(np.array(losses) > threshold),
                ),
                Mistake(
                    "spikes_previous_step",
                    "You read the norm of the step before (`history.grad_norm[step - 2]`, or "
                    "`[-2]`); the current step's is the last entry, `history.grad_norm[-1]`.",
                    steps_where(np.concatenate([[False], norm_array[:-1] > threshold])),
                ),
            ],
            what="steps",
        )
    return c.passed()
