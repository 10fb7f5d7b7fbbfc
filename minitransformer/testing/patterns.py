"""Checks for the exercises that measure attention patterns: target matrices and head scores.

``check_mirror_target`` (the target of reversal), ``check_pattern_score`` (the share of a head's
attention on its target keys), ``check_offset_score`` (previous- and next-token heads),
``check_same_token_mask`` (other copies of a token) and ``check_attention_on_padding`` (how much
weight real queries put on padding). Each case is built so that the plausible wrong answers
give numbers different from the right one: targets with several keys per row and rows with
none, sequences of different lengths, several padding keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.testing.checker import Checker, Mistake, learner_check


def random_weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Attention-like weights: positive, each row (last axis) summing to 1."""
    w = rng.gamma(0.7, size=shape)
    return w / w.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------------- mirror target


@learner_check
def check_mirror_target(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check ``mirror_target(L)``: the (L, L) target of reversal, ``T[i, L - 1 - i] = 1``.

    Any numeric or bool array of 0s and 1s is accepted.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: the identity (``np.flip`` without an axis flips both axes),
        the anti-diagonal shifted by one (``T[i, L - i]``), wrong shape or type.
    """
    c = Checker(fn, "mirror_target", verbose)
    for L in (8, 5, 1):
        with c.case(f"mirror_target({L})"):
            got = c.array(c.call({"L": L}), kinds="fiub")
            right = np.eye(L)[::-1]
            hint = (
                "The target is an (L, L) matrix, one row per query and one column per key, "
                "with a 1 where the query should read the key (not the list of keys)."
            )
            c.compare(
                got,
                right,
                [
                    Mistake(
                        "mirror_identity",
                        "Your matrix is the identity: query i reads key i. Reversal reads key "
                        "L - 1 - i. (`np.flip(np.eye(L))` flips both axes, which gives the "
                        "identity back: flip one, `np.eye(L)[::-1]`.)",
                        np.eye(L),
                    ),
                    Mistake(
                        "mirror_shifted",
                        "Your anti-diagonal is one key off: with positions 0 .. L-1, the mirror "
                        "of i is L - 1 - i (the mirror of 0 is the last key, L - 1).",
                        np.roll(right, 1, axis=1),
                    ),
                ],
                shape_hints={(L,): hint},
            )
    return c.passed()


# ------------------------------------------------------------------------- pattern score


def _pattern_mistakes(A: np.ndarray, T: np.ndarray) -> list[Mistake]:
    on_target = (A * T).sum(axis=1)  # (S,) attention of each query on its marked keys
    rows = T.sum(axis=1) > 0
    columns = T.sum(axis=0) > 0
    marked = np.where(T > 0, A, -np.inf)
    return [
        Mistake(
            "pattern_all_rows",
            "You averaged over every query, also those with no 1 in their row of T: a query "
            "the target says nothing about must not count (it would pull the score towards 0). "
            "Average only over the rows where T has a 1.",
            np.asarray(on_target.mean()),
        ),
        Mistake(
            "pattern_mean_of_marked_entries",
            "You averaged over the marked entries, sum(A * T) / sum(T): a query with two "
            "target keys then counts twice. Sum each query's weights on its marked keys, then "
            "average those sums over the queries.",
            np.asarray((A * T).sum() / T.sum()),
        ),
        Mistake(
            "pattern_column_sums",
            "You summed over the queries (axis 0, the columns) instead of over the keys: row i "
            "of A is query i, so each query's attention on its marked keys is "
            "`(A * T).sum(axis=1)`.",
            np.asarray((A * T).sum(axis=0)[columns].mean()),
        ),
        Mistake(
            "pattern_mean_not_sum",
            "You averaged each query's weights on its marked keys instead of summing them: "
            "with two target keys, a query that splits its attention 0.5 / 0.5 between them "
            "is perfect (1), not 0.5.",
            np.asarray(((A * T).sum(axis=1)[rows] / T.sum(axis=1)[rows]).mean()),
        ),
        Mistake(
            "pattern_max_not_sum",
            "You took each query's largest weight on a marked key instead of the sum over its "
            "marked keys.",
            np.asarray(marked.max(axis=1)[rows].mean()),
        ),
        Mistake(
            "pattern_total",
            "You returned the total attention on target keys; average it over the queries "
            "that have a target.",
            np.asarray((A * T).sum()),
        ),
    ]


@learner_check
def check_pattern_score(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check ``my_pattern_score(A, T)``: mean over the queries with a target of the weight on it.

    ``A`` and ``T`` have shape (S, S); the score is ``mean_i sum_j A[i, j] T[i, j]`` over the
    rows i where T has at least one 1, as :func:`minitransformer.pattern_score` computes it.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: every row averaged (also those without a target), the mean
        of the marked entries (``sum(A*T) / sum(T)``), sums over queries instead of keys, the
        mean or max over a row's marked keys instead of their sum, the total not averaged.
    """
    c = Checker(fn, "my_pattern_score", verbose)
    rng = np.random.default_rng(2019)
    A = random_weights(rng, (6, 6))
    T = np.zeros((6, 6))
    T[0, [1, 4]] = T[1, 5] = T[2, [0, 1, 4]] = T[4, 4] = T[5, [0, 1]] = 1  # 5 rows, 4 keys
    sparse = np.zeros((4, 4))
    sparse[0, 0] = sparse[2, [1, 3]] = 1  # rows 1 and 3: no target
    cases = [
        ("rows with 1, 2 or 3 target keys, and one row with none", A, T),
        ("a permutation target (one key per row): the reverse task's", A, np.eye(6)[::-1]),
        ("a 4 x 4 head with targets in two rows only", random_weights(rng, (4, 4)), sparse),
    ]
    for title, a, t in cases:
        with c.case(title):
            got = c.number(c.call({"A": a, "T": t}))
            rows = t.sum(axis=1) > 0
            c.compare(got, np.asarray((a * t).sum(axis=1)[rows].mean()), _pattern_mistakes(a, t))
    return c.passed()


# --------------------------------------------------------------------------- offset score


@learner_check
def check_offset_score(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check ``offset_score(weights, k)``: mean over queries i of ``weights[..., i, i + k]``.

    Only the queries that have a key i + k count; the result has the leading shape of
    ``weights`` (e.g. (layers, heads)).

    Raises
    ------
    CheckFailed
        Naming the likely mistake: key i - k read instead of i + k, the sum divided by all S
        queries, wrap-around (``np.roll``) keys counted, the mean over another axis.
    """
    c = Checker(fn, "offset_score", verbose)
    rng = np.random.default_rng(7)
    w4 = random_weights(rng, (2, 3, 6, 6))
    for title, w, k in [
        ("weights (2, 3, 6, 6), k = -1 (previous token)", w4, -1),
        ("weights (2, 3, 6, 6), k = +2", w4, 2),
        ("one head (5, 5), k = -3", random_weights(rng, (5, 5)), -3),
    ]:
        with c.case(title):
            got = c.array(c.call({"weights": w, "k": k}))
            S = w.shape[-1]
            right = np.diagonal(w, offset=k, axis1=-2, axis2=-1).mean(axis=-1)
            rolled = np.stack([w[..., i, (i + k) % S] for i in range(S)], axis=-1)
            c.compare(
                got,
                right,
                [
                    Mistake(
                        "offset_sign",
                        f"You read key i - k (or query i + k): for k = {k} query i must read "
                        f"key i {'+' if k > 0 else '-'} {abs(k)}, the entry `weights[..., i, i "
                        "+ k]` (row = query, column = key).",
                        np.diagonal(w, offset=-k, axis1=-2, axis2=-1).mean(axis=-1),
                    ),
                    Mistake(
                        "offset_divided_by_all_queries",
                        f"You divided by all {S} queries, but only {S - abs(k)} have a key "
                        "i + k: average over those (the first or last |k| queries have "
                        "nothing to read).",
                        np.diagonal(w, offset=k, axis1=-2, axis2=-1).sum(axis=-1) / S,
                    ),
                    Mistake(
                        "offset_wraps_around",
                        "You counted keys that wrap around the end of the sequence "
                        "(`np.roll`, or an index modulo S): the query before the first token "
                        "has no previous token. Use only the queries with 0 <= i + k < S.",
                        rolled.mean(axis=-1),
                    ),
                ],
                shape_hints={
                    right.shape + (n,): "One number per head: average over the queries too."
                    for n in (S, S - abs(k))
                },
            )
    return c.passed()


# ------------------------------------------------------------------------ same-token mask


@learner_check
def check_same_token_mask(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check ``same_token_mask(ids)``: the (S, S) bool matrix, True where ``ids[i] == ids[j]``
    and ``i != j``.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: the diagonal kept (a token is not its own other copy), only
        earlier or only later copies, numbers instead of bools, wrong shape.
    """
    c = Checker(fn, "same_token_mask", verbose)
    for title, ids in [
        ("ids [5, 7, 5, 9, 5]: one token three times", np.array([5, 7, 5, 9, 5])),
        ("ids [1, 2, 3]: no token repeated", np.array([1, 2, 3])),
        ("ids [4, 4, 8, 8, 4, 2]", np.array([4, 4, 8, 8, 4, 2])),
    ]:
        with c.case(title):
            got = c.array(c.call({"ids": ids}), kinds="b")
            same = ids[:, None] == ids[None, :]  # (S, S)
            S = len(ids)
            right = same & ~np.eye(S, dtype=bool)
            c.compare(
                got,
                right,
                [
                    Mistake(
                        "same_token_diagonal",
                        "Your matrix is True on the diagonal: every token equals itself, but "
                        "it is not another copy of itself. Remove the diagonal: "
                        "`& ~np.eye(S, dtype=bool)`.",
                        same,
                    ),
                    Mistake(
                        "same_token_earlier_only",
                        "Only earlier copies are marked (j < i): a copy later in the sentence "
                        "counts too.",
                        right & np.tri(S, k=-1, dtype=bool),
                    ),
                    Mistake(
                        "same_token_later_only",
                        "Only later copies are marked (j > i): a copy earlier in the sentence "
                        "counts too.",
                        right & ~np.tri(S, dtype=bool),
                    ),
                ],
            )
    return c.passed()


# ------------------------------------------------------------------- attention on padding


def _padding_mistakes(weights: np.ndarray, mask: np.ndarray) -> list[Mistake]:
    padding_keys = ~mask[:, None, None, :]  # (B, 1, 1, S)
    on_padding = (weights * padding_keys).sum(axis=-1)  # (B, H, S)
    real = np.broadcast_to(mask[:, None, :], on_padding.shape)  # (B, H, S) real queries
    n_padding = np.maximum(padding_keys.sum(axis=-1), 1)  # (B, 1, 1)
    per_sequence = [on_padding[b][real[b]].mean() for b in range(len(mask))]
    return [
        Mistake(
            "padding_mean_not_sum",
            "You averaged each query's weights over the padding keys instead of summing "
            "them: the question is how much of the query's weight (its row sums to 1) lands "
            "on padding, all padding keys together.",
            np.asarray((on_padding / n_padding)[real].mean()),
        ),
        Mistake(
            "padding_all_queries",
            "You averaged over every query, padding queries too: their outputs are thrown "
            "away, so only the real queries count (`mask` selects them as rows as well).",
            np.asarray(on_padding.mean()),
        ),
        Mistake(
            "padding_mean_of_sequences",
            "You averaged each sequence first, then the sequences: a short sequence then "
            "weighs as much as a long one. Average over all real queries of all sequences "
            "at once.",
            np.asarray(np.mean(per_sequence)),
        ),
        Mistake(
            "padding_real_keys",
            "You summed the weights on the real keys, not on the padding keys: `mask` is True "
            "for real tokens, so the padding keys are `~mask`.",
            np.asarray((weights * mask[:, None, None, :]).sum(axis=-1)[real].mean()),
        ),
        Mistake(
            "padding_total",
            "You returned a total; return the mean over the real queries.",
            np.asarray(on_padding[real].sum()),
        ),
        Mistake(
            "padding_mean_over_keys_axis",
            "You averaged over the keys as well (`.mean()` of the masked weights): sum over the "
            "keys first (each query's weight on padding), then average over the queries.",
            np.asarray((weights * padding_keys).mean()),
        ),
    ]


@learner_check
def check_attention_on_padding(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check ``attention_on_padding(weights, mask)``: the mean over real queries of the weight
    they put on padding keys.

    ``weights`` has shape (B, H, S, S) and ``mask`` (B, S), True for real tokens; the result is
    one number.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: the mean instead of the sum over padding keys, padding queries
        counted, sequences averaged first, real keys summed instead of padding ones, a total
        instead of a mean, the mean over keys and queries together.
    """
    c = Checker(fn, "attention_on_padding", verbose)
    rng = np.random.default_rng(10)
    mask = np.arange(6)[None, :] < np.array([6, 4, 2])[:, None]  # lengths 6, 4 and 2
    forgot = random_weights(rng, (3, 2, 6, 6))  # a forgotten mask: weight on every key
    masked = forgot * mask[:, None, None, :]
    masked = masked / masked.sum(axis=-1, keepdims=True)  # the right attention: none on padding
    for title, weights in [
        ("3 sequences of lengths 6, 4 and 2, mask forgotten (weight on every key)", forgot),
        ("the same batch with its mask applied: no weight on padding", masked),
    ]:
        with c.case(title):
            got = c.number(c.call({"weights": weights, "mask": mask}))
            on_padding = (weights * ~mask[:, None, None, :]).sum(axis=-1)  # (B, H, S)
            real = np.broadcast_to(mask[:, None, :], on_padding.shape)
            c.compare(got, np.asarray(on_padding[real].mean()), _padding_mistakes(weights, mask))
    return c.passed()
