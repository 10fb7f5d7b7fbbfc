"""Checks for the causal decoder: the sampling distribution, and an induction head's score.

``check_next_token_probs`` runs the learner's temperature and top-k on logits chosen so that
each slip gives other numbers (a temperature that multiplies, top-k not renormalised or keeping
the smallest, masked logits set to 0 instead of -inf, no max subtracted before ``exp``).
``check_induction_score`` runs the learner's score on patterns of text said two and three
times, where reading the *same* character's previous occurrence, the previous token, or only
the second saying gives other numbers than reading the character that came after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.attention import causal_mask
from minitransformer.functional import masked_softmax, softmax
from minitransformer.generate import next_token_probs
from minitransformer.testing.checker import Checker, Mistake, learner_check


def _top(z: np.ndarray, k: int, smallest: bool = False) -> np.ndarray:
    """Bool (V,): the k largest (or smallest) entries of z."""
    order = np.argsort(z)
    keep = np.zeros(z.shape, dtype=bool)
    keep[order[:k] if smallest else order[-k:]] = True
    return keep


def _softmax_where(z: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return masked_softmax(z, keep)


def _probs_mistakes(z: np.ndarray, T: float, k: int | None) -> list[Mistake]:
    """What each classic slip gives on logits ``z`` (V,), temperature ``T`` and top-k ``k``."""
    V = len(z)
    keep = np.ones(V, dtype=bool) if k is None else _top(z, k)
    right_hint = "p = softmax(z / T) over the top-k logits, 0 elsewhere."
    mistakes = [
        Mistake(
            "probs_temperature_multiplied",
            "You multiplied the logits by the temperature; divide them: z / T (a low "
            "temperature must sharpen the distribution, a high one flatten it). " + right_hint,
            _softmax_where(z * T, keep),
        ),
        Mistake(
            "probs_temperature_ignored",
            "The temperature changed nothing: divide the *logits* by it before the softmax "
            "(dividing the probabilities by T and renormalising cancels out). " + right_hint,
            _softmax_where(z, keep),
        ),
    ]
    if k is not None:
        with np.errstate(divide="ignore"):
            p = softmax(z / T)
        mistakes += [
            Mistake(
                "probs_top_k_smallest",
                f"You kept the {k} *smallest* logits; top-k keeps the k largest "
                "(`np.argsort(z)[-k:]`, the end of an ascending sort). " + right_hint,
                _softmax_where(z / T, _top(z, k, smallest=True)),
            ),
            Mistake(
                "probs_top_k_not_renormalised",
                "Your probabilities do not sum to 1: you zeroed the tokens outside the top k "
                "after the softmax without dividing by what is left. Mask the logits with "
                "-inf before the softmax, or renormalise: p / p.sum(). " + right_hint,
                np.where(keep, p, 0.0),
            ),
            Mistake(
                "probs_top_k_zero_logits",
                "The tokens outside the top k still get probability: you set their logits to "
                "0, which exp turns into 1, not 0. Set them to -inf (exp(-inf) = 0). " + right_hint,
                softmax(np.where(keep, z / T, 0.0)),
            ),
        ]
        for n in (k - 1, k + 1):
            if 1 <= n <= V:
                mistakes.append(
                    Mistake(
                        "probs_top_k_off_by_one",
                        f"You kept {n} tokens instead of {k}: check the index of the k-th "
                        "largest logit (`np.sort(z)[-k]`) and the comparison (`>=`). " + right_hint,
                        _softmax_where(z / T, _top(z, n)),
                    )
                )
    return mistakes


@learner_check
def check_next_token_probs(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a learner's sampling distribution with temperature and top-k.

    Expected signature::

        next_token_probs(logits, temperature=1.0, top_k=None) -> ndarray of shape (V,)

    ``softmax(logits / temperature)`` over the ``top_k`` largest logits (all when None),
    exactly 0 elsewhere, summing to 1 and computed stably. As
    :func:`minitransformer.generate.next_token_probs` (which raises on a temperature <= 0).

    Raises
    ------
    CheckFailed
        Naming the likely mistake: the temperature multiplied or ignored, top-k keeping the
        smallest, one too many or too few, not renormalised, masked with 0 instead of -inf,
        NaN from large logits (no max subtracted), wrong type, dtype or shape.
    """
    c = Checker(fn, "next_token_probs", verbose)
    z = np.array([2.0, 1.0, 0.5, -1.0, 3.0, 0.0, 1.5])
    big = np.array([100.0, 80.0, 90.0, 0.0, 98.0])
    cases = [
        ("7 logits, temperature 1, no top-k", z, 1.0, None),
        ("temperature 0.5 (sharper)", z, 0.5, None),
        ("temperature 2 (flatter), top-k 3", z, 2.0, 3),
        ("top-k 1: only the most likely token", z, 1.0, 1),
        ("logits up to 100 at temperature 0.1, top-k 3", big, 0.1, 3),
    ]
    stable = (
        "Dividing logits up to 100 by T = 0.1 gives 1000, and np.exp(1000) is inf: subtract the "
        "largest logit first, `np.exp(s - s.max())`, or use a softmax that does."
    )
    for title, logits, T, k in cases:
        with c.case(title):
            got = c.array(
                c.call({"logits": logits}, {"temperature": T, "top_k": k}),
                "probs",
            )
            c.compare(
                got,
                next_token_probs(logits, T, k),
                _probs_mistakes(logits, T, k),
                what="probs",
                nonfinite_hint=stable,
            )
    return c.passed()


# ------------------------------------------------------------------------ induction score


def _repeated_pattern(S: int, seed: int) -> np.ndarray:
    """A causal (S, S) attention pattern with every row's weights random over its keys."""
    scores = np.random.default_rng(seed).normal(size=(S, S)) * 1.5
    return masked_softmax(scores, causal_mask(S))


def _score(weights: np.ndarray, queries: range, offset: int) -> float:
    """Mean of ``weights[i, i - offset]`` over the given queries (negative keys wrap)."""
    return float(np.mean([weights[i, i - offset] for i in queries]))


@learner_check
def check_induction_score(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a learner's induction score of one head on a passage said several times.

    Expected signature::

        induction_score(weights, period) -> float

    with ``weights`` of shape (S, S), one head's attention over a text whose characters repeat
    every ``period`` positions (``ids[i] == ids[i - period]``). An induction head at query
    ``i`` reads the character that came *after* the previous occurrence of its own, key
    ``i - period + 1``; the score is the mean of ``weights[i, i - period + 1]`` over the
    queries that have a previous occurrence, ``i = period, ..., S - 1``.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: the previous occurrence itself read (``i - period``), the
        previous token (``i - 1``), query and key swapped, the queries of the first saying
        included (a negative index wraps around), only the second saying averaged, a sum for
        the mean, not a number.
    """
    c = Checker(fn, "induction_score", verbose)
    for title, S, period, seed in [
        ("a passage of 5 said twice (S = 10)", 10, 5, 0),
        ("a passage of 4 said three times (S = 12)", 12, 4, 1),
    ]:
        weights = _repeated_pattern(S, seed)
        with c.case(title):
            got = c.number(c.call({"weights": weights, "period": period}), "score")
            later = range(period, S)
            c.compare(
                got,
                np.asarray(_score(weights, later, period - 1)),
                [
                    Mistake(
                        "induction_previous_occurrence",
                        "You read key i - period: the previous occurrence of the *same* "
                        "character (a duplicate-token head). An induction head reads the one "
                        "after it, key i - period + 1, whose character comes next.",
                        np.asarray(_score(weights, later, period)),
                    ),
                    Mistake(
                        "induction_previous_token",
                        "You read key i - 1, the previous token: that is a previous-token "
                        "head's score. An induction head reads key i - period + 1.",
                        np.asarray(_score(weights, later, 1)),
                    ),
                    Mistake(
                        "induction_transposed",
                        "You read weights[i - period + 1, i]: row and column swapped. Rows are "
                        "queries, columns keys: weights[i, i - period + 1]. (Under the causal "
                        "mask a key after its query has weight 0.)",
                        np.asarray(float(np.mean([weights[i - period + 1, i] for i in later]))),
                    ),
                    Mistake(
                        "induction_all_queries",
                        "You averaged over every query, also those of the first saying: they "
                        "have no previous occurrence, and `weights[i, i - period + 1]` with a "
                        "negative index wraps around to the end of the row. Average over "
                        "i = period, ..., S - 1.",
                        np.asarray(_score(weights, range(S), period - 1)),
                    ),
                    Mistake(
                        "induction_from_period_minus_one",
                        "You started one query early, at i = period - 1, whose key 0 is no "
                        "repetition. Average over i = period, ..., S - 1.",
                        np.asarray(_score(weights, range(period - 1, S), period - 1)),
                    ),
                    Mistake(
                        "induction_second_saying_only",
                        "You averaged over the second saying only (i < 2 * period); every "
                        "later saying repeats the passage too: i = period, ..., S - 1.",
                        np.asarray(_score(weights, range(period, 2 * period), period - 1)),
                    ),
                    Mistake(
                        "induction_sum",
                        "You summed the weights; the score is their mean over the queries "
                        "(between 0 and 1, 1 for a perfect induction head).",
                        np.asarray(_score(weights, later, period - 1) * len(later)),
                    ),
                ],
                what="score",
            )
    return c.passed()
