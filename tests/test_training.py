"""Training: the loop learns the crisp tasks (accuracy and attention pattern), its history,
early stopping and callbacks work, overfitting is measurable, and the shipped models meet
their targets."""

from __future__ import annotations

import numpy as np
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.tasks import TWIN_SEEDS, get_task, pattern_score
from minitransformer.toy_models import available_toy_models, load_toy_model
from minitransformer.training import (
    AttentionSnapshots,
    Callback,
    assess,
    evaluate,
    held_out,
    loss_and_grads,
    make_model,
    overfitting_report,
    parameters,
    train,
    train_task,
)

# ------------------------------------------------------------- the targets, from scratch


@pytest.mark.parametrize("name", ["reverse", "pointer"])
def test_crisp_task_learns_answer_and_pattern_from_scratch(name):
    """Fixed steps and seed (the task's settings: 600 steps), not a time limit."""
    task = get_task(name)
    probe = held_out(task, 1).token_ids[0]
    snapshots = AttentionSnapshots(probe, every=100)
    model, classifier, history = train_task(name, seed=0, progress=False, callbacks=[snapshots])
    assert history.steps[-1] == task.settings.steps == 600
    result = assess(model, classifier, name)
    assert result.accuracy >= 0.99
    assert result.pattern_score is not None and result.pattern_score >= 0.9
    # the head forms during training: the probe's pattern starts diffuse and ends crisp
    assert snapshots.steps == [0, 100, 200, 300, 400, 500, 600]
    T = task.generate(1, seed=12345).attention_target[0]
    first = pattern_score(snapshots.weights[0, result.layer, result.head], T)
    last = pattern_score(snapshots.weights[-1, result.layer, result.head], T)
    assert first < 0.5 < 0.9 < last


# ------------------------------------------------------------------------- the loop


def test_history_and_schedule():
    model, classifier = make_model("shift", seed=1)
    history = train(
        model, classifier, get_task("shift"), steps=60, lr=1e-2, warmup_steps=10,
        val_data=held_out("shift", 64), eval_every=20, progress=False,
    )  # fmt: skip
    assert history.steps == list(range(1, 61))
    assert len(history.train_loss) == len(history.train_acc) == len(history.grad_norm) == 60
    assert history.val_steps == [20, 40, 60] and len(history.val_acc) == 3
    assert history.lr[0] == pytest.approx(1e-3) and max(history.lr) == pytest.approx(1e-2)
    assert history.lr[-1] == pytest.approx(0.0)
    assert np.mean(history.train_loss[-10:]) < np.mean(history.train_loss[:10])
    assert history.best_step in history.val_steps and not history.stopped_early
    assert history.seconds > 0


def test_training_changes_the_models_own_arrays():
    model, classifier = make_model("reverse")
    W_Q = model.params["blocks.0.attn.W_Q"]
    before = W_Q.copy()
    train(model, classifier, get_task("reverse"), steps=3, progress=False)
    assert model.params["blocks.0.attn.W_Q"] is W_Q and not np.array_equal(W_Q, before)
    assert parameters(model, classifier)["head.W"] is classifier.params["W"]


def test_same_seed_same_result():
    runs = []
    for _ in range(2):
        model, classifier = make_model("pointer", seed=2)
        train(model, classifier, get_task("pointer"), steps=20, seed=5, progress=False)
        runs.append(model.params["embed.W_E"].copy())
    np.testing.assert_array_equal(*runs)


def test_loss_and_grads_match_finite_differences():
    config = EncoderConfig(vocab_size=12, d_model=8, n_heads=2, n_layers=1, d_ff=8,
                           max_len=12, positional="learned", dtype="float64")  # fmt: skip
    model = Encoder(config, seed=0)
    classifier = Classifier(8, 12, pooling="mean", seed=1, dtype="float64")
    batch = get_task("shift").generate(3, seed=0)
    batch = type(batch)(batch.token_ids, batch.mask, batch.targets[:, 4], None)  # (B,) targets
    _, _, grads = loss_and_grads(model, classifier, batch, training=False)
    params = parameters(model, classifier)
    rng = np.random.default_rng(0)
    for name in ("head.W", "blocks.0.attn.W_K", "embed.W_pos", "blocks.0.ln2.gamma"):
        index = tuple(rng.integers(0, n) for n in params[name].shape)
        original = params[name][index]
        losses = []
        for delta in (1e-6, -1e-6):
            params[name][index] = original + delta
            losses.append(loss_and_grads(model, classifier, batch, training=False)[0])
        params[name][index] = original
        numeric = (losses[0] - losses[1]) / 2e-6
        assert grads[name][index] == pytest.approx(numeric, rel=1e-5, abs=1e-9), name


def test_dropout_training_runs():
    config = EncoderConfig(vocab_size=12, d_model=16, n_heads=2, n_layers=1, d_ff=16,
                           max_len=8, dropout=0.1)  # fmt: skip
    model, classifier = Encoder(config), Classifier(16, 12)
    history = train(model, classifier, get_task("reverse"), steps=5, progress=False)
    assert np.all(np.isfinite(history.train_loss))


def test_early_stopping_restores_the_best_parameters():
    task = get_task("reverse")
    tiny = task.generate(8, seed=3)
    val = held_out(task, 128)
    model, classifier = make_model(task, seed=0)
    history = train(model, classifier, tiny, steps=2000, lr=1e-2, val_data=val,
                    eval_every=10, patience=5, progress=False)  # fmt: skip
    assert history.stopped_early and history.steps[-1] < 2000
    assert history.val_steps[-1] - history.best_step == 5 * 10
    restored_loss, _ = evaluate(model, classifier, val)
    assert restored_loss == pytest.approx(min(history.val_loss), rel=1e-5)


def test_callbacks_are_called_every_step_and_at_the_end():
    calls = []

    class Recorder(Callback):
        def on_step(self, step, model, classifier, history):
            calls.append(("step", step, len(history.steps)))

        def on_end(self, step, model, classifier, history):
            calls.append(("end", step, len(history.steps)))

    model, classifier = make_model("reverse")
    train(model, classifier, get_task("reverse"), steps=3, callbacks=[Recorder()], progress=False)
    assert calls == [("step", 0, 0), ("step", 1, 1), ("step", 2, 2), ("step", 3, 3), ("end", 3, 3)]


def test_attention_snapshots_shape_and_last_step():
    model, classifier = make_model("sort")  # 2 layers, 2 heads
    probe = get_task("sort").generate(1, seed=0).token_ids
    snapshots = AttentionSnapshots(probe, every=4)
    train(model, classifier, get_task("sort"), steps=10, callbacks=[snapshots], progress=False)
    assert snapshots.steps == [0, 4, 8, 10]  # and the final step, off the grid
    assert snapshots.weights.shape == (4, 2, 2, 6, 6)
    np.testing.assert_allclose(snapshots.weights.sum(axis=-1), 1.0, rtol=1e-5)
    assert not np.allclose(snapshots.weights[0], snapshots.weights[-1])


def test_progress_bar_shows_steps_and_accuracy(capsys):
    model, classifier = make_model("reverse")
    train(model, classifier, get_task("reverse"), steps=20, val_data=held_out("reverse", 32),
          eval_every=10, desc="reverse-run")  # fmt: skip
    err = capsys.readouterr().err
    assert "reverse-run" in err and "20/20" in err and "val_acc=" in err


def test_bad_arguments():
    model, classifier = make_model("reverse")
    task = get_task("reverse")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        train(model, classifier, task, steps=0)
    with pytest.raises(ValueError, match="patience .* needs val_data"):
        train(model, classifier, task, steps=5, patience=2)
    with pytest.raises(TypeError, match="data must be a Task or a Batch, got list"):
        train(model, classifier, [1, 2], steps=5, progress=False)
    with pytest.raises(ValueError, match=r"probe_ids must be one sequence"):
        AttentionSnapshots(np.zeros((2, 8), dtype=int))
    with pytest.raises(ValueError, match="every must be a positive int"):
        AttentionSnapshots([1, 2], every=0)


# ----------------------------------------------------------------------- overfitting


def test_overfitting_is_visible_in_the_numbers():
    report = overfitting_report("reverse", n_small=16, n_large=2048, steps=300, seed=0)
    assert report.train_acc["small"] >= 0.95  # memorised
    assert report.val_acc["small"] < 0.6 < 0.99 <= report.val_acc["large"]
    assert report.val_loss_rise > 0.5  # the validation curve turns up after its minimum
    assert report.min_val_loss_step < report.small.val_steps[-1]
    assert report.pattern_val["small"] < report.pattern_train["small"]
    assert report.pattern_val["small"] < 0.9 <= report.pattern_val["large"]


# -------------------------------------------------------------------- shipped models

TARGETS = {  # task: (minimum held-out accuracy, pattern-score check)
    ("reverse", 0): (0.99, lambda s: s >= 0.9),
    ("pointer", 0): (0.99, lambda s: s >= 0.9),
    ("shift", 0): (0.99, lambda s: s >= 0.9),
    ("twin", TWIN_SEEDS["avoid"]): (0.99, lambda s: s <= 0.1),  # avoids the twin
    ("twin", TWIN_SEEDS["attend"]): (0.99, lambda s: s >= 0.8),  # attends to it
    ("histogram", 0): (0.98, lambda s: s <= 0.6),  # diffuse: no RASP-like head needed
    ("sort", 0): (0.98, lambda s: s <= 0.7),
    ("brackets", 0): (0.98, lambda s: s <= 0.5),
}


def test_every_task_has_a_shipped_model():
    assert set(available_toy_models()) == set(TARGETS)


@pytest.mark.parametrize(("name", "seed"), list(TARGETS), ids=[f"{t}-{s}" for t, s in TARGETS])
def test_shipped_model_meets_its_target(name, seed):
    model, classifier, task = load_toy_model(name, seed)
    assert task is get_task(name) and model.config == task.config
    assert model.params["embed.W_E"].dtype == np.float32
    result = assess(model, classifier, task)
    min_accuracy, pattern_ok = TARGETS[(name, seed)]
    assert result.accuracy >= min_accuracy
    assert result.pattern_score is not None and pattern_ok(result.pattern_score)


def test_unknown_toy_model():
    with pytest.raises(ValueError, match=r"no shipped model for task 'twin' with seed 99"):
        load_toy_model("twin", seed=99)


# ------------------------------------------------------------------------- command line


def test_cli_train_prints_accuracy_and_saves(tmp_path, capsys):
    from minitransformer.checkpoint import load_checkpoint
    from minitransformer.cli import main

    out = tmp_path / "rev.npz"
    assert main(["train", "reverse", "--steps", "300", "--seed", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "reverse: 300 steps" in printed.out and "held-out accuracy" in printed.out
    assert "pattern_score" in printed.out and f"saved {out}" in printed.out
    assert "300/300" in printed.err  # the progress bar
    checkpoint = load_checkpoint(out)
    assert checkpoint.metadata["task"] == "reverse" and checkpoint.metadata["seed"] == 1
    assert checkpoint.metadata["held_out_accuracy"] >= 0.99
    assert assess(checkpoint.model, checkpoint.classifier, "reverse").accuracy >= 0.99


def test_cli_train_rejects_unknown_task_and_bad_steps(capsys):
    from minitransformer.cli import main

    with pytest.raises(SystemExit):
        main(["train", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "reverse", "--steps", "0"])
    assert "argument --steps: must be at least 1, got 0" in capsys.readouterr().err
