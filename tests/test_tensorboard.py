"""TensorBoardLogger: a short training run written to event files and read back."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboardX")

from PIL import Image  # noqa: E402  (matplotlib's dependency; decodes the PNGs written)

from minitransformer.tasks import get_task  # noqa: E402
from minitransformer.tensorboard import (  # noqa: E402
    SEPARATOR_RGB,
    TensorBoardLogger,
    attention_image,
    read_images,
    read_scalars,
)
from minitransformer.training import held_out, make_model, train  # noqa: E402

STEPS = 30


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Train the 2-layer "sort" model for 30 steps with a logger; keep what was logged."""
    logdir = tmp_path_factory.mktemp("runs") / "sort"
    task = get_task("sort")
    model, classifier = make_model(task)
    probe = task.generate(1, seed=3).token_ids
    logger = TensorBoardLogger(logdir, probe_ids=probe, scalar_every=2, image_every=12)
    history = train(
        model, classifier, task, steps=STEPS, val_data=held_out(task, 64), eval_every=10,
        callbacks=[logger], progress=False,
    )  # fmt: skip
    _, trace = model.run_with_trace(probe, keep="*.attn.weights")
    return logdir, history, trace, task


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_scalars_are_the_history(run):
    logdir, history, _, _ = run
    scalars = read_scalars(logdir)
    assert set(scalars) == {
        "loss/train", "accuracy/train", "optimizer/lr", "optimizer/grad_norm",
        "loss/validation", "accuracy/validation",
    }  # fmt: skip
    steps = list(range(2, STEPS + 1, 2))
    for tag, values in (
        ("loss/train", history.train_loss),
        ("accuracy/train", history.train_acc),
        ("optimizer/lr", history.lr),
        ("optimizer/grad_norm", history.grad_norm),
    ):
        assert [s for s, _ in scalars[tag]] == steps, tag
        expected = [values[s - 1] for s in steps]  # history index 0 is step 1
        np.testing.assert_allclose([v for _, v in scalars[tag]], expected, rtol=1e-6)
    assert [s for s, _ in scalars["loss/validation"]] == history.val_steps == [10, 20, 30]
    np.testing.assert_allclose([v for _, v in scalars["loss/validation"]], history.val_loss, 1e-6)
    np.testing.assert_allclose(
        [v for _, v in scalars["accuracy/validation"]], history.val_acc, 1e-6
    )


def test_attention_images_per_layer_at_the_right_steps(run):
    logdir, _, trace, task = run
    images = read_images(logdir)
    assert set(images) == {"attention/layer_0", "attention/layer_1"}
    S, H = task.length, task.config.n_heads
    for l in range(2):
        logged = images[f"attention/layer_{l}"]
        assert [step for step, _ in logged] == [0, 12, 24, STEPS]  # and the last step
        pixels = decode(logged[-1][1])
        assert pixels.shape == (S * 16, H * S * 16 + (H - 1) * 4, 3)
        # the last image is the trained model's attention, one grey square per weight
        weights = trace[f"blocks.{l}.attn.weights"][0]  # (H, S, S)
        for h in range(H):
            left = h * (S * 16 + 4)
            cells = pixels[8::16, left + 8 : left + S * 16 : 16, 0]  # centre of every cell
            np.testing.assert_array_equal(cells, np.round(255 * weights[h]).astype(np.uint8))
        assert (pixels[:, S * 16 : S * 16 + 4] == SEPARATOR_RGB).all()
    # the first image (step 0) shows the untrained attention, which training changed
    assert not np.array_equal(decode(images["attention/layer_0"][0][1]), pixels)


def test_attention_image_layout():
    weights = np.array([[[1.0, 0.0], [0.25, 0.75]], [[0.5, 0.5], [0.0, 1.0]]])
    image = attention_image(weights, cell=3, gap=2)
    assert image.dtype == np.uint8 and image.shape == (6, 3 + 3 + 2 + 3 + 3, 3)
    grey = image[:, :, 0]
    heads = np.concatenate([image[:, :6], image[:, 8:]], axis=1)
    assert (heads == heads[:, :, :1]).all()  # grey: R = G = B
    np.testing.assert_array_equal(grey[::3, 0:6:3], [[255, 0], [64, 191]])  # head 0
    np.testing.assert_array_equal(grey[::3, 8:14:3], [[128, 128], [0, 255]])  # head 1
    assert (image[:, 6:8] == SEPARATOR_RGB).all()
    assert (image[0:3, 0:3] == 255).all()  # a weight fills its whole cell
    assert attention_image(weights[:1], cell=1, gap=0).shape == (2, 2, 3)


@pytest.mark.parametrize(
    ("weights", "kwargs", "message"),
    [
        (np.ones((2, 3)), {}, r"shape \(n_heads, S, S\), got \(2, 3\)"),
        (np.ones((1, 2, 3)), {}, r"shape \(n_heads, S, S\)"),
        (np.full((1, 2, 2), 1.5), {}, r"in \[0, 1\]"),
        (np.full((1, 2, 2), np.nan), {}, r"in \[0, 1\]"),
        (np.ones((1, 2, 2)), {"cell": 0}, "cell must be a positive int"),
        (np.ones((1, 2, 2)), {"gap": -1}, "gap must be an int >= 0"),
    ],
)
def test_attention_image_rejects_bad_input(weights, kwargs, message):
    with pytest.raises(ValueError, match=message):
        attention_image(weights, **kwargs)


def test_without_probe_no_images_and_logger_is_reusable(tmp_path):
    task = get_task("reverse")
    model, classifier = make_model(task)
    logger = TensorBoardLogger(tmp_path, scalar_every=5)
    for _ in range(2):  # a second train() with the same logger writes a second event file
        train(model, classifier, task, steps=10, callbacks=[logger], progress=False)
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    assert read_images(tmp_path) == {}
    assert [s for s, _ in read_scalars(tmp_path)["loss/train"]] == [5, 10, 5, 10]


def test_bad_arguments_and_missing_logs(tmp_path):
    with pytest.raises(ValueError, match="image_every must be a positive int, got 0"):
        TensorBoardLogger(tmp_path, image_every=0)
    with pytest.raises(ValueError, match="scalar_every must be a positive int"):
        TensorBoardLogger(tmp_path, scalar_every=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="probe_mask needs probe_ids"):
        TensorBoardLogger(tmp_path, probe_mask=[1, 1])
    with pytest.raises(FileNotFoundError, match="no TensorBoard event files"):
        read_scalars(tmp_path)


def test_missing_tensorboardx_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import now raises ImportError
    with pytest.raises(
        ImportError, match=r"pip install tensorboardX.*minitransformer\[tensorboard\]"
    ):
        TensorBoardLogger(tmp_path)
