"""compare_architectures: every variant trained on the same data, measured, tabulated."""

from __future__ import annotations

import numpy as np
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.experiments import (
    Result,
    compare_architectures,
    results_table,
    steps_to_target,
    variant_config,
)
from minitransformer.tasks import get_task
from minitransformer.training import History, assess, make_model


@pytest.fixture(scope="module")
def results() -> list[Result]:
    variants = {"shipped": {}, "2 heads": {"n_heads": 2}, "no positions": {"positional": "none"}}
    return compare_architectures("reverse", variants, steps=120, seeds=(0, 1), eval_every=20)


def test_one_result_per_variant_and_seed_in_order(results):
    assert [(r.variant, r.seed) for r in results] == [
        ("shipped", 0), ("shipped", 1), ("2 heads", 0), ("2 heads", 1),
        ("no positions", 0), ("no positions", 1),
    ]  # fmt: skip
    shipped = get_task("reverse").config
    assert results[0].config == shipped
    assert results[2].config.n_heads == 2 and results[2].config.d_model == shipped.d_model
    assert results[4].config.positional == "none"


def test_results_measure_the_runs(results):
    for r in results:
        assert r.history.steps == list(range(1, 121))
        assert r.history.val_steps == [20, 40, 60, 80, 100, 120]
        assert r.seconds == r.history.seconds > 0
        assert 0.0 <= r.accuracy <= 1.0
        assert r.pattern_score is not None and 0.0 <= r.pattern_score <= 1.0
        assert r.layer == 0 and 0 <= r.head < r.config.n_heads  # type: ignore[operator]
        assert r.steps_to_target == steps_to_target(r.history, 0.99)
        assert r.model.config == r.config  # the trained model, e.g. to draw its attention
        assert assess(r.model, r.classifier, "reverse").accuracy == r.accuracy
    # reversing needs positions: with them the task is learned, without them it cannot be
    learned = [r for r in results if r.variant != "no positions"]
    assert all(r.accuracy > 0.95 for r in learned)
    assert all(r.steps_to_target is not None for r in learned if r.accuracy >= 0.99)
    blind = [r for r in results if r.variant == "no positions"]
    assert all(r.accuracy < 0.5 and r.steps_to_target is None for r in blind)
    assert all(r.pattern_score < 0.5 for r in blind)  # type: ignore[operator]


def test_same_seed_same_data_same_result():
    """Equal variants and seeds give equal runs: the comparison isolates the config."""
    a, b = compare_architectures("reverse", {"a": {}, "b": {}}, steps=20, eval_every=10)
    assert a.history.train_loss == b.history.train_loss
    assert a.accuracy == b.accuracy


def test_steps_to_target_is_the_first_evaluation_at_target():
    history = History(val_steps=[10, 20, 30, 40], val_acc=[0.5, 0.995, 0.9, 1.0])
    assert steps_to_target(history, 0.99) == 20
    assert steps_to_target(history, 1.0) == 40
    assert steps_to_target(History(val_steps=[10], val_acc=[0.2]), 0.99) is None


def test_results_table_averages_over_seeds(results):
    table = results_table(results)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["variant", "seeds", "accuracy"]
    assert "steps to 99%" in lines[0]
    assert [line.split("  ")[0].strip() for line in lines[1:]] == [
        "shipped", "2 heads", "no positions",
    ]  # fmt: skip
    shipped = [r for r in results if r.variant == "shipped"]
    row = lines[1].split()
    assert row[1] == "2"
    assert row[2] == f"{np.mean([r.accuracy for r in shipped]):.3f}"
    assert lines[3].split()[4] == "never"  # "no positions" never reaches 99 %


def test_results_table_counts_seeds_that_reached_the_target():
    task = get_task("reverse")
    model, classifier = make_model(task)
    runs = [
        Result("v", seed, task.config, 1.0, reached, 0.9, 0, 0, 1.0, History(), model, classifier)
        for seed, reached in ((0, 40), (1, None), (2, 60))
    ]
    assert "50 (2/3)" in results_table(runs)
    with pytest.raises(ValueError, match="empty"):
        results_table([])


def test_a_variant_without_the_scaling_trains_raw_scores():
    """{"scale_scores": False} reaches the trained encoder: its scores are the raw q.k."""
    scaled, raw = compare_architectures(
        "reverse", {"scaled": {}, "raw": {"scale_scores": False}}, steps=20, eval_every=10
    )
    assert scaled.config.scale_scores and not raw.config.scale_scores
    assert raw.model.config == raw.config
    assert raw.history.train_loss[0] != scaled.history.train_loss[0]  # differs from step 1
    ids = get_task("reverse").generate(2, seed=3).token_ids
    for r, factor in [(scaled, 1 / np.sqrt(raw.config.d_head)), (raw, 1.0)]:
        _, trace = r.model.run_with_trace(ids)
        q, k = trace["q", 0], trace["k", 0]
        np.testing.assert_allclose(
            trace["scores", 0], q @ np.swapaxes(k, -1, -2) * factor, rtol=1e-4, atol=1e-5
        )


def test_variant_config_replaces_fields_and_names_unknown_ones():
    base = EncoderConfig()
    assert variant_config(base, {"norm": "pre"}) == EncoderConfig(norm="pre")
    with pytest.raises(ValueError, match=r"unknown EncoderConfig field\(s\) \['scale'\]"):
        variant_config(base, {"scale": False})
    with pytest.raises(TypeError, match="dict of EncoderConfig fields"):
        variant_config(base, [("norm", "pre")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_heads"):
        variant_config(base, {"n_heads": 5})  # 32 is not divisible by 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variants": {}}, "non-empty dict"),
        ({"variants": {"a": {}}, "seeds": ()}, "at least one seed"),
        ({"variants": {"a": {}}, "target": 1.5}, "target must be"),
        ({"variants": {"a": {}}, "steps": 0}, "steps must be a positive int"),
        ({"variants": {"a": {"heads": 2}}}, "unknown EncoderConfig field"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare_architectures("reverse", **kwargs)


def test_unknown_task_is_named():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        compare_architectures("nope", {"a": {}})
