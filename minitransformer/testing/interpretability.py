"""Checks for the interpretability exercises: rollout, head ablation, completeness of IG.

``check_rollout`` runs a learner's two-layer rollout on random attention; ``check_head_drop``
and ``check_completeness_gap`` run the learner's function on a small random encoder and compare
with what :mod:`minitransformer.interpret` computes, and with what each plausible slip gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.interpret import (
    ablation_importance,
    attention_rollout,
    class_logit,
    head_mask_without,
    integrated_gradients,
)
from minitransformer.testing.checker import Checker, Mistake, learner_check
from minitransformer.testing.patterns import random_weights

# ------------------------------------------------------------------------------- rollout


def _rollout_mistakes(A1: np.ndarray, A2: np.ndarray) -> list[Mistake]:
    S = A1.shape[-1]
    I = np.eye(S)
    hat1, hat2 = (0.5 * A.mean(axis=0) + 0.5 * I for A in (A1, A2))  # rows already sum to 1
    per_head_paths = [
        (0.5 * a2 + 0.5 * I) @ (0.5 * a1 + 0.5 * I) for a1, a2 in zip(A1, A2, strict=True)
    ]
    per_head = np.mean(per_head_paths, axis=0)  # each head rolled out alone, then averaged
    return [
        Mistake(
            "rollout_order",
            "You multiplied in the wrong order, Â1 @ Â2: layer 2 mixes the states that layer "
            "1 produced, so the rollout after layer 2 is Â2 @ Â1 (row i of Â2 picks which of "
            "layer 1's outputs token i reads).",
            hat1 @ hat2,
        ),
        Mistake(
            "rollout_no_residual",
            "You left out the residual term: the skip connection passes half of each state on "
            "unchanged, so each layer's matrix is Â = ½ mean_h A + ½ I, not the attention "
            "alone. Without it the rollout forgets that a token keeps its own state.",
            A2.mean(axis=0) @ A1.mean(axis=0),
        ),
        Mistake(
            "rollout_unnormalised_identity",
            "Your rows sum to 4, not 1: Â = mean_h A + I without the halves. Mix the two "
            "halves, Â = ½ mean_h A + ½ I, so that each row stays a distribution.",
            (A2.mean(axis=0) + I) @ (A1.mean(axis=0) + I),
        ),
        Mistake(
            "rollout_heads_summed",
            "You summed the heads instead of averaging them: Â = ½ mean_h A + ½ I.",
            (0.5 * A2.sum(axis=0) + 0.5 * I) @ (0.5 * A1.sum(axis=0) + 0.5 * I),
        ),
        Mistake(
            "rollout_per_head",
            "You rolled out each head on its own and averaged the results: rollout averages "
            "the heads of each layer first (a layer's heads are summed into one output), then "
            "multiplies the layers.",
            per_head,
        ),
        Mistake(
            "rollout_elementwise",
            "You multiplied the two matrices entry by entry (`*`); following paths through "
            "the layers is a matrix product, `Â2 @ Â1`.",
            hat2 * hat1,
        ),
        Mistake(
            "rollout_last_layer_only",
            "You returned Â2, the second layer alone: the rollout multiplies it with the "
            "first layer's Â1 (Â2 @ Â1).",
            hat2,
        ),
    ]


@learner_check
def check_rollout(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check ``rollout_two_layers(A1, A2)``: ``Â2 @ Â1`` with ``Â = ½ mean_h A + ½ I``.

    ``A1``, ``A2`` of shape (H, S, S) are two layers' attention for one sequence (rows sum to
    1); the answer has shape (S, S) (Abnar & Zuidema 2020).

    Raises
    ------
    CheckFailed
        Naming the likely mistake: Â1 @ Â2, no residual term, the halves left out, heads summed
        or rolled out one by one, an entrywise product, the second layer alone.
    """
    c = Checker(fn, "rollout_two_layers", verbose)
    rng = np.random.default_rng(2020)
    for title, H, S in [("3 heads, 5 tokens", 3, 5), ("4 heads, 7 tokens", 4, 7)]:
        A1, A2 = random_weights(rng, (H, S, S)), random_weights(rng, (H, S, S))
        with c.case(title):
            got = c.array(c.call({"A1": A1, "A2": A2}))
            right = attention_rollout(np.stack([A1, A2])[:, None])[1, 0]  # after layer 2
            c.compare(got, right, _rollout_mistakes(A1, A2))
    return c.passed()


# ------------------------------------------------------------------- a small model to probe


def _small_model(n_layers: int = 2, n_heads: int = 3) -> tuple[Encoder, Classifier, np.ndarray]:
    """A random encoder (untrained, deterministic), a classifier and a few token ids."""
    config = EncoderConfig(
        vocab_size=12,
        d_model=12,
        n_heads=n_heads,
        n_layers=n_layers,
        d_ff=24,
        max_len=6,
        positional="learned",
        dtype="float64",
    )
    ids = np.random.default_rng(3).integers(1, 12, size=(4, 6))
    return Encoder(config, seed=5), Classifier(12, 5, seed=6), ids


# ------------------------------------------------------------------------------ head drop


@learner_check
def check_head_drop(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check ``head_drop(model, token_ids, metric)``: ``metric(all heads) - metric(all but
    (l, h))`` for every head, an array of shape (n_layers, n_heads).

    Run on a random 2-layer, 3-head encoder with a metric that every head moves.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: the difference the wrong way round, the head kept alone
        instead of removed, the head removed in every layer, the ablated metric alone, wrong
        shape (layers and heads swapped).
    """
    c = Checker(fn, "head_drop", verbose)
    model, classifier, ids = _small_model()
    cfg = model.config

    def metric(hidden: np.ndarray) -> float:  # the mean logit of class 0: every head moves it
        return float(classifier(hidden)[..., 0].mean())

    with c.case("a random 2-layer, 3-head encoder, metric = the mean logit of class 0"):
        got = c.array(c.call({"model": model, "token_ids": ids, "metric": metric}))
        full = metric(model(ids))
        only = np.zeros((cfg.n_layers, cfg.n_heads))
        every_layer = np.zeros_like(only)
        ablated = np.zeros_like(only)
        for l in range(cfg.n_layers):
            for h in range(cfg.n_heads):
                kept = np.zeros((cfg.n_layers, cfg.n_heads))
                kept[l, h] = 1.0
                only[l, h] = full - metric(model(ids, head_mask=kept))
                column = head_mask_without(cfg, [(layer, h) for layer in range(cfg.n_layers)])
                every_layer[l, h] = full - metric(model(ids, head_mask=column))
                ablated[l, h] = metric(model(ids, head_mask=head_mask_without(cfg, [(l, h)])))
        right = ablation_importance(model, ids, metric)
        c.compare(
            got,
            right,
            [
                Mistake(
                    "head_drop_sign",
                    "Your numbers have the wrong sign: the drop is metric(all heads) - "
                    "metric(without the head), positive where removing the head hurts.",
                    -right,
                ),
                Mistake(
                    "head_drop_head_kept_alone",
                    "You kept head (l, h) alone and removed all the others: the head mask is "
                    "ones (heads kept) with a 0 for the one head removed, "
                    "`head_mask_without(model.config, [(l, h)])`.",
                    only,
                ),
                Mistake(
                    "head_drop_every_layer",
                    "You removed head h in every layer at once: remove only head h of layer "
                    "l, `head_mask_without(model.config, [(l, h)])`.",
                    every_layer,
                ),
                Mistake(
                    "head_drop_no_difference",
                    "You returned the metric without the head; the drop is the full model's "
                    "metric minus that.",
                    ablated,
                ),
            ],
            shape_hints={
                (cfg.n_heads, cfg.n_layers): "Layers and heads are swapped: entry [l, h] is "
                "head h of layer l, shape (n_layers, n_heads)."
            },
        )
    return c.passed()


# ------------------------------------------------------------------------ completeness gap


@learner_check
def check_completeness_gap(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check ``completeness_gap(model, token_ids, objective, baseline_ids, scores)``:
    ``sum(scores) - (F(x) - F(x'))``, one number.

    ``objective(hidden)`` returns ``(values, gradient)``; ``F`` of a one-sequence batch is
    ``values[0]``. Run on a random encoder, with the scores of Integrated Gradients with 3 and
    with 30 steps.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: the sign flipped (or the absolute value taken), the
        baseline's F left out, the relative gap, the mean of the scores instead of their
        sum, the scores left out.
    """
    c = Checker(fn, "completeness_gap", verbose)
    model, classifier, ids = _small_model()
    x, baseline = ids[0], np.zeros_like(ids[0])  # baseline: every token replaced by id 0
    objective = class_logit(classifier, classes=2, position=1)  # gaps of both signs
    F_x = float(objective(model(x))[0][0])
    F_baseline = float(objective(model(baseline))[0][0])
    difference = F_x - F_baseline
    for steps in (3, 30):
        scores = integrated_gradients(model, x, objective, baseline, steps=steps).scores
        with c.case(f"Integrated Gradients scores with {steps} steps on a random encoder"):
            args = {"model": model, "token_ids": x, "objective": objective}
            args |= {"baseline_ids": baseline, "scores": scores}
            got = c.number(c.call(args))
            gap = scores.sum() - difference
            c.compare(
                got,
                np.asarray(gap),
                [
                    Mistake(
                        "gap_sign",
                        "Your gap has the wrong sign (or is its absolute value): keep the "
                        "sign, sum(scores) - (F(x) - F(x')).",
                        np.asarray(-gap),
                    ),
                    Mistake(
                        "gap_no_baseline",
                        "You compared the scores with F(x) alone: completeness says they sum "
                        "to F(x) - F(x'), the change from the baseline to the input.",
                        np.asarray(scores.sum() - F_x),
                    ),
                    Mistake(
                        "gap_relative",
                        "You divided the gap by F(x) - F(x'); return it as it is (the notebook "
                        "prints the relative size itself).",
                        np.asarray(gap / difference),
                    ),
                    Mistake(
                        "gap_mean_of_scores",
                        "You averaged the scores; completeness is about their sum.",
                        np.asarray(scores.mean() - difference),
                    ),
                    Mistake(
                        "gap_no_scores",
                        "You returned F(x) - F(x') without the scores: the gap compares it "
                        "with sum(scores).",
                        np.asarray(difference),
                    ),
                ],
            )
    return c.passed()
