"""Toy tasks: generators are seeded and correct, target matrices agree with the targets,
and pattern_score / best_head measure what they say."""

from __future__ import annotations

import numpy as np
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import IGNORE_INDEX
from minitransformer.tasks import (
    PAD,
    TASKS,
    TWIN_SEEDS,
    Batch,
    best_head,
    get_task,
    head_scores,
    pattern_score,
)


@pytest.mark.parametrize("name", list(TASKS))
def test_generator_is_seeded_and_well_formed(name):
    task = get_task(name)
    a, b, c = task.generate(50, seed=7), task.generate(50, seed=7), task.generate(50, seed=8)
    np.testing.assert_array_equal(a.token_ids, b.token_ids)
    np.testing.assert_array_equal(a.targets, b.targets)
    assert not np.array_equal(a.token_ids, c.token_ids)
    B, S = a.token_ids.shape
    assert B == 50 and S <= task.max_len <= task.config.max_len
    assert a.token_ids.dtype.kind == "i" and a.mask.dtype == bool
    assert a.targets.shape == (B, S)
    assert a.token_ids.min() >= 0 and a.token_ids.max() < task.vocab_size == task.config.vocab_size
    scored = a.targets != IGNORE_INDEX
    assert scored.any(axis=1).all()  # every example has something to predict
    assert a.targets[scored].min() >= 0 and a.targets[scored].max() < task.n_classes
    assert np.all(a.token_ids[~a.mask] == PAD) and np.all(a.token_ids[a.mask] != PAD)
    assert not scored[~a.mask].any()  # padding has no target
    T = a.attention_target
    assert T is not None and T.shape == (B, S, S)
    assert set(np.unique(T)) <= {0.0, 1.0}
    assert not T[~a.mask].any() and not T.transpose(0, 2, 1)[~a.mask].any()  # no padding


def test_reverse_pointer_shift_targets_are_read_where_T_points():
    """For the copy tasks, the target is exactly the token at the key T marks."""
    for name in ("reverse", "pointer", "shift", "sort"):
        batch = get_task(name).generate(64, seed=1)
        T = batch.attention_target
        rows = T.sum(axis=2) > 0
        np.testing.assert_array_equal(T.sum(axis=2)[rows], 1.0)
        read = np.einsum("bij,bj->bi", T, batch.token_ids)  # token at the marked key
        np.testing.assert_array_equal(read[rows], batch.targets[rows], err_msg=name)
        assert np.all(batch.targets[~rows] == IGNORE_INDEX), name


def test_reverse_example():
    batch = get_task("reverse").generate(3, seed=0)
    np.testing.assert_array_equal(batch.targets, batch.token_ids[:, ::-1])
    np.testing.assert_array_equal(batch.attention_target[0], np.eye(8)[::-1])


def test_pointer_example():
    batch = get_task("pointer").generate(200, seed=0)
    k = batch.token_ids[:, -1] - 10
    assert set(k) == set(range(6))
    np.testing.assert_array_equal(batch.targets[:, -1], batch.token_ids[np.arange(200), k])
    assert np.all(batch.targets[:, :-1] == IGNORE_INDEX)


def test_shift_has_variable_lengths():
    batch = get_task("shift").generate(200, seed=0)
    lengths = batch.mask.sum(axis=1)
    assert lengths.min() == 5 and lengths.max() == 12
    assert np.all(batch.targets[:, :2] == IGNORE_INDEX)
    real = batch.mask[:, 2:]
    np.testing.assert_array_equal(batch.targets[:, 2:][real], batch.token_ids[:, :-2][real])


def test_twin_targets_point_to_the_other_copy():
    batch = get_task("twin").generate(100, seed=0)
    i = np.arange(8)
    for ids, twin in zip(batch.token_ids, batch.targets, strict=True):
        assert np.all(twin != i)
        np.testing.assert_array_equal(ids[twin], ids)
        np.testing.assert_array_equal(twin[twin], i)
        assert len(set(ids)) == 4
    assert TWIN_SEEDS["avoid"] != TWIN_SEEDS["attend"]


def test_histogram_counts():
    batch = get_task("histogram").generate(100, seed=0)
    for ids, mask, targets in zip(batch.token_ids, batch.mask, batch.targets, strict=True):
        assert ids[0] == 1 and targets[0] == IGNORE_INDEX
        for s in range(1, mask.sum()):
            assert targets[s] == np.sum(ids[1 : mask.sum()] == ids[s])
    assert len(np.unique(batch.mask.sum(axis=1))) > 3  # variable lengths


def test_sort_and_brackets():
    batch = get_task("sort").generate(50, seed=0)
    np.testing.assert_array_equal(batch.targets, np.sort(batch.token_ids, axis=1))
    batch = get_task("brackets").generate(200, seed=0)
    for ids, targets in zip(batch.token_ids, batch.targets, strict=True):
        depth = np.cumsum(np.where(ids == 1, 1, -1))
        assert depth.min() >= 0 and depth[-1] == 0  # balanced
        for s in np.nonzero(ids == 2)[0]:
            j = targets[s]
            assert ids[j] == 1 and depth[j] - 1 == depth[s]  # the ( that this ) closes
            assert np.all(depth[j:s] >= depth[j])  # nothing closes it earlier
        assert np.all(targets[ids == 1] == IGNORE_INDEX)


def test_batch_select():
    batch = get_task("shift").generate(10, seed=0)
    part = batch.select(np.array([3, 1]))
    assert isinstance(part, Batch) and len(part) == 2
    np.testing.assert_array_equal(part.attention_target[1], batch.attention_target[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown task 'nope'; choose one of"):
        get_task("nope")
    with pytest.raises(ValueError, match="n must be a positive int"):
        get_task("reverse").generate(0)


# ----------------------------------------------------------------------------- pattern score


def test_pattern_score_of_perfect_uniform_and_wrong_heads():
    T = get_task("reverse").generate(4, seed=0).attention_target  # anti-diagonal
    assert pattern_score(T, T) == 1.0
    assert pattern_score(np.full((4, 8, 8), 1 / 8), T) == pytest.approx(1 / 8)
    assert pattern_score(np.broadcast_to(np.eye(8), (4, 8, 8)), T) == 0.0


def test_pattern_score_skips_rows_without_a_pattern():
    T = np.zeros((3, 3))
    T[2, 0] = 1.0  # only the last query has an expected key
    A = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.75, 0.25, 0.0]])
    assert pattern_score(A, T) == 0.75
    with pytest.raises(ValueError, match="no row with an expected pattern"):
        pattern_score(A, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="same"):
        pattern_score(A, np.zeros((4, 4)))


def test_best_head_finds_the_head_that_matches():
    config = EncoderConfig(vocab_size=12, d_model=8, n_heads=2, n_layers=2, d_ff=8, max_len=8)
    model = Encoder(config, seed=0)
    batch = get_task("reverse").generate(5, seed=0)
    _, trace = model.run_with_trace(batch.token_ids)
    scores = head_scores(trace, batch.attention_target)
    assert scores.shape == (2, 2)
    for l in range(2):
        for h in range(2):
            assert scores[l, h] == pytest.approx(
                pattern_score(trace["weights", l][:, h], batch.attention_target)
            )
    best = best_head(trace, batch.attention_target)
    assert best.score == scores.max() and scores[best.layer, best.head] == best.score
