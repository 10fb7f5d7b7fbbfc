"""Attention over training: the strip and the animation show the recorded snapshots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib import animation
from PIL import Image

from minitransformer.tasks import get_task, pattern_score
from minitransformer.training import AttentionSnapshots, make_model, train
from viz.style import (
    PADDING_COLOR,
)
from viz.training import MAX_FRAMES, animate_attention, attention_over_training

S = 6


def fake_snapshots(n: int, mask=None) -> SimpleNamespace:
    """n snapshots of a 2-layer, 3-head model on S tokens; every pattern different."""
    rng = np.random.default_rng(0)
    weights = rng.random((n, 2, 3, S, S))
    weights /= weights.sum(axis=-1, keepdims=True)
    return SimpleNamespace(steps=[10 * i for i in range(n)], weights=weights, mask=mask)


def drawn(ax) -> np.ma.MaskedArray:
    return ax.images[0].get_array()


@pytest.fixture(scope="module")
def trained_snapshots():
    """Real AttentionSnapshots from a few steps of training on 'sort' (2 layers, 2 heads)."""
    task = get_task("sort")
    model, classifier = make_model(task)
    snapshots = AttentionSnapshots(task.generate(1, seed=0).token_ids, every=4)
    train(model, classifier, task, steps=10, callbacks=[snapshots], progress=False)
    return snapshots


def test_strip_shows_the_heads_weights_at_every_step(trained_snapshots):
    fig = attention_over_training(trained_snapshots, layer=1, head=0)
    steps = trained_snapshots.steps  # [0, 4, 8, 10]
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"step {s}" for s in steps]
    for index, ax in enumerate(panels):
        np.testing.assert_array_equal(drawn(ax).data, trained_snapshots.weights[index, 1, 0])
        assert ax.images[0].get_clim() == (0.0, 1.0), "one colour scale for every step"
    assert fig.get_suptitle() == "Layer 1, head 0: attention during training"
    colorbar = [ax for ax in fig.axes if ax.get_ylabel() == "attention weight"]
    assert len(colorbar) == 1
    # query labels on the first panel only, key labels under every panel
    assert panels[0].get_ylabel() == "query" and panels[1].get_ylabel() == ""
    assert all(ax.get_xlabel() == "key" for ax in panels)


def test_chosen_steps_tokens_and_pattern_scores():
    snapshots = fake_snapshots(5)
    T = np.eye(S)[::-1]  # a reversal target
    tokens = list("abcdef")
    fig = attention_over_training(snapshots, 0, 2, tokens, steps=[40, 0], target=T)
    panels = fig.axes[:2]
    for ax, index in zip(panels, [4, 0], strict=True):
        weights = snapshots.weights[index, 0, 2]
        np.testing.assert_array_equal(drawn(ax).data, weights)
        step = snapshots.steps[index]
        assert ax.get_title() == f"step {step}\nscore {pattern_score(weights, T):.2f}"
    assert [t.get_text() for t in panels[0].get_yticklabels()] == tokens
    assert [t.get_text() for t in panels[1].get_xticklabels()] == tokens


def test_many_snapshots_are_thinned_keeping_first_and_last():
    snapshots = fake_snapshots(30)
    fig = attention_over_training(snapshots, 0, 0, max_columns=4)
    titles = [ax.get_title() for ax in fig.axes if ax.images and ax.get_visible()]
    assert len(titles) == MAX_FRAMES
    assert titles[0] == "step 0" and titles[-1] == "step 290"
    shown = [int(t.split()[1]) for t in titles]
    assert shown == sorted(shown) and len(set(shown)) == MAX_FRAMES
    rows = {round(ax.get_position().y0, 3) for ax in fig.axes if ax.images}
    assert len(rows) == 2, "8 panels, 4 per row"


def test_padding_of_the_probe_is_masked():
    mask = np.array([[True, True, True, True, False, False]])
    fig = attention_over_training(fake_snapshots(2, mask=mask), 1, 1)
    expected = np.zeros((S, S), dtype=bool)
    expected[:, 4:] = True  # the two padding keys
    expected[4:, :] = True  # and the two padding queries: padding is not attention
    np.testing.assert_array_equal(np.ma.getmaskarray(drawn(fig.axes[0])), expected)
    colours = [t.get_color() for t in fig.axes[0].get_yticklabels()]
    assert colours[4:] == [PADDING_COLOR] * 2 and PADDING_COLOR not in colours[:4]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"layer": 2}, IndexError, r"layer must be in \[0, 2\), got 2"),
        ({"head": 3}, IndexError, r"head must be in \[0, 3\), got 3"),
        ({"steps": [5]}, ValueError, r"steps \[5\] were not recorded"),
        ({"steps": []}, ValueError, "steps is empty"),
        ({"tokens": ["a", "b"]}, ValueError, "tokens has 2 entries but the trace has 6"),
        ({"target": np.eye(4)}, ValueError, r"target must have shape \(6, 6\)"),
        ({"max_columns": 0}, ValueError, "max_columns must be a positive int"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    arguments = {"snapshots": fake_snapshots(3), "layer": 0, "head": 0, **kwargs}
    with pytest.raises(error, match=message):
        attention_over_training(**arguments)


def test_snapshots_must_be_recorded_snapshots():
    with pytest.raises(TypeError, match="AttentionSnapshots"):
        attention_over_training(np.zeros((2, 1, 1, 3, 3)), 0, 0)
    with pytest.raises(ValueError, match="no snapshot yet"):
        attention_over_training(AttentionSnapshots([1, 2, 3]), 0, 0)


def dark_pixels_correlation(frame: Image.Image) -> float:
    """Correlation of x and y over the heatmap's darkest pixels (left of the colour bar)."""
    rgb = np.asarray(frame.convert("RGB")).astype(int)
    height, width, _ = rgb.shape
    dark = (rgb[..., 2] > 80) & (rgb[..., 0] < 40) & (rgb[..., 1] < 80)  # "Blues" near 1.0
    dark[:, int(0.75 * width) :] = False
    y, x = np.nonzero(dark)
    return float(np.corrcoef(x, y)[0, 1])


def test_gif_has_one_frame_per_snapshot_showing_its_pattern(tmp_path):
    eye = np.eye(S)
    weights = np.stack([eye, eye[::-1], eye])[:, None, None]  # (3, 1, 1, S, S)
    snapshots = SimpleNamespace(steps=[0, 50, 100], weights=weights)
    path = animate_attention(snapshots, 0, 0, tmp_path / "head.gif", fps=4, dpi=60)
    assert path == tmp_path / "head.gif"
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        correlations = []
        for index in range(3):
            gif.seek(index)
            assert gif.info["duration"] == 250  # 1000 ms / fps
            correlations.append(dark_pixels_correlation(gif))
    # the diagonal runs down-right in frames 0 and 2, down-left (reversal) in frame 1
    assert correlations[0] > 0.9 and correlations[2] > 0.9 and correlations[1] < -0.9


def test_without_the_writer_the_strip_is_saved(tmp_path, monkeypatch, trained_snapshots):
    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    path = animate_attention(trained_snapshots, 0, 1, tmp_path / "head.mp4", dpi=40)
    assert path == tmp_path / "head.png" and path.is_file()
    with Image.open(path) as strip:
        assert strip.width > 2 * strip.height, "a row of the 4 snapshots"


def test_animation_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.gif or \.mp4"):
        animate_attention(fake_snapshots(2), 0, 0, tmp_path / "head.avi")
    with pytest.raises(ValueError, match="fps must be a positive int"):
        animate_attention(fake_snapshots(2), 0, 0, tmp_path / "head.gif", fps=0)
