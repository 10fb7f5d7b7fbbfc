"""TensorBoardLogger: a short training run written to event files and read back."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboardX")

from PIL import Image  # noqa: E402  (matplotlib's dependency; decodes the PNGs written)

from minitransformer.interpret.qk_space import qk_projection  # noqa: E402
from minitransformer.tasks import get_task  # noqa: E402
from minitransformer.tensorboard import (  # noqa: E402
    PROJECTOR_COLUMNS,
    SEPARATOR_RGB,
    TensorBoardLogger,
    attention_image,
    labelled_attention_image,
    query_key_points,
    read_images,
    read_projector,
    read_scalars,
    write_query_key_projector,
)
from minitransformer.training import History, held_out, make_model, train  # noqa: E402

STEPS = 30
#: Probe tokens, hostile ones included: drawn literally, written to the projector intact.
TOKENS = ["$x$", "a$b$c", "\udc80", "tab\there", "line\nbreak", "back\\slash", "[CLS]", "é"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Train the 2-layer "sort" model for 30 steps with a logger; keep what was logged."""
    logdir = tmp_path_factory.mktemp("runs") / "sort"
    task = get_task("sort")
    model, classifier = make_model(task)
    probe = task.generate(1, seed=3).token_ids
    logger = TensorBoardLogger(logdir, probe_ids=probe, scalar_every=2, image_every=12,
                               probe_tokens=TOKENS[: probe.shape[1]],
                               projector_heads=[(0, 1), (1, 0)])  # fmt: skip
    history = train(
        model, classifier, task, steps=STEPS, val_data=held_out(task, 64), eval_every=10,
        callbacks=[logger], progress=False,
    )  # fmt: skip
    _, trace = model.run_with_trace(probe)
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
    assert set(images) == {
        "attention/layer_0", "attention/layer_1",
        "attention/layer_0/tokens", "attention/layer_1/tokens",
    }  # fmt: skip
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
    with pytest.raises(ValueError, match="probe_mask, probe_tokens and projector_heads need"):
        TensorBoardLogger(tmp_path, probe_mask=[1, 1])
    with pytest.raises(ValueError, match="probe_tokens has 2 entries but probe_ids has 3"):
        TensorBoardLogger(tmp_path, probe_ids=[1, 2, 3], probe_tokens=["a", "b"])
    with pytest.raises(FileNotFoundError, match="no TensorBoard event files"):
        read_scalars(tmp_path)


def test_missing_tensorboardx_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import now raises ImportError
    with pytest.raises(
        ImportError, match=r"pip install tensorboardX.*minitransformer\[tensorboard\]"
    ):
        TensorBoardLogger(tmp_path)


def test_labelled_attention_images_show_the_trained_weights_with_the_tokens(run):
    logdir, _, trace, task = run
    images = read_images(logdir)
    for l in range(2):
        logged = images[f"attention/layer_{l}/tokens"]
        assert [step for step, _ in logged] == [0, 12, 24, STEPS]
        weights = trace[f"blocks.{l}.attn.weights"][0]
        expected = labelled_attention_image(weights, TOKENS[: task.length])
        np.testing.assert_array_equal(decode(logged[-1][1]), expected)  # PNG is lossless
    # the image really depends on the tokens (they are drawn), and on the weights
    other = labelled_attention_image(weights, [str(i) for i in range(task.length)])
    assert not np.array_equal(other, expected)
    assert not np.array_equal(decode(images["attention/layer_1/tokens"][0][1]), expected)


def test_labelled_attention_image_draws_tokens_literally_and_checks_them():
    from matplotlib.text import Text

    drawn: list[Text] = []
    original = Text.draw

    def record(self, renderer):  # type: ignore[no-untyped-def]
        drawn.append(self)
        return original(self, renderer)

    Text.draw = record  # type: ignore[method-assign]
    try:
        image = labelled_attention_image(np.full((2, 3, 3), 1 / 3), ["$x$", r"$\frac{1}{$", "a\tb"])
    finally:
        Text.draw = original  # type: ignore[method-assign]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    shown = {t.get_text(): t for t in drawn}
    assert {"$x$", r"$\frac{1}{$", "a\\tb", "head 0", "head 1"} <= set(shown)  # tab escaped
    assert not shown["$x$"].get_parse_math()
    with pytest.raises(ValueError, match="tokens has 2 entries but the weights have 3"):
        labelled_attention_image(np.full((1, 3, 3), 1 / 3), ["a", "b"])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        labelled_attention_image(np.full((1, 2, 2), 2.0))


def test_projector_holds_the_queries_and_keys_with_their_tokens(run):
    logdir, _, trace, task = run
    embeddings = read_projector(logdir)
    assert set(embeddings) == {f"qk/layer_0_head_1:{STEPS:05d}", f"qk/layer_1_head_0:{STEPS:05d}"}
    S = task.length
    vectors, rows = embeddings[f"qk/layer_1_head_0:{STEPS:05d}"]
    points, metadata = query_key_points(trace, 1, 0, TOKENS[:S])
    # float32 rounding apart: the logger's pass ran inside training (pure NumPy), this one may
    # run the compiled loops of minitransformer.kernels
    np.testing.assert_allclose(vectors, points, rtol=0, atol=1e-5 * np.abs(points).max())
    assert vectors.shape == (2 * S, task.config.d_head)
    assert list(rows[0]) == list(PROJECTOR_COLUMNS)
    expected_tokens = [t.encode("utf-8", "backslashreplace").decode() for t in TOKENS[:S]]
    assert [r["token"] for r in rows] == expected_tokens * 2  # tabs and line breaks intact
    assert [r["kind"] for r in rows] == ["query"] * S + ["key"] * S
    assert [r["position"] for r in rows] == [str(i) for i in range(S)] * 2
    assert rows[S + 3]["label"] == "k tab\there"
    # AttentionViz's normalisation keeps every query's attention: softmax of q . k / sqrt(d)
    q, k = points[:S], points[S:]
    scores = q @ k.T / np.sqrt(task.config.d_head)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(weights, trace["blocks.1.attn.weights"][0, 0], atol=1e-5)
    norms = np.linalg.norm(q, axis=1).mean(), np.linalg.norm(k, axis=1).mean()
    assert norms[0] == pytest.approx(norms[1])
    # the projector's points are the ones viz.qk_space draws: the same plane after PCA
    plane = qk_projection(trace["blocks.1.attn.q"][0, 0], trace["blocks.1.attn.k"][0, 0])
    coords = (points - points.mean(axis=0)) @ plane.axes.T
    np.testing.assert_allclose(coords, np.vstack([plane.queries, plane.keys]), atol=1e-9)


def test_projector_of_a_padded_batch_keeps_real_tokens_and_names_the_sequence(tmp_path):
    from minitransformer.config import EncoderConfig
    from minitransformer.encoder import Encoder

    model = Encoder(EncoderConfig(vocab_size=10, d_model=8, n_heads=2, max_len=8), seed=0)
    ids = np.array([[1, 2, 3, 4], [5, 6, 0, 0]])
    _, trace = model.run_with_trace(ids, ids != 0)
    tokens = [["a", "b", "c", "d"], ["e", "f", "[PAD]", "[PAD]"]]
    assert write_query_key_projector(tmp_path, trace, [(0, 1)], tokens) == ["qk/layer_0_head_1"]
    vectors, rows = read_projector(tmp_path)["qk/layer_0_head_1:00000"]
    assert vectors.shape == (12, 4)  # 6 real tokens, as queries and as keys
    assert [r["token"] for r in rows[:6]] == ["a", "b", "c", "d", "e", "f"]
    assert [r["sequence"] for r in rows[:6]] == ["0"] * 4 + ["1"] * 2
    with pytest.raises(TypeError, match=r"heads must be a list of \(layer, head\) pairs"):
        write_query_key_projector(tmp_path, trace, (0, 1))
    with pytest.raises(ValueError, match=r"head must be an int in \[0, 2\), got 2"):
        write_query_key_projector(tmp_path, trace, [(0, 2)])
    with pytest.raises(ValueError, match="tokens must give 4 tokens for each of the 2"):
        write_query_key_projector(tmp_path, trace, [(0, 0)], ["a", "b", "c", "d"])
    _, kept = model.run_with_trace(ids, keep="*.attn.weights")
    with pytest.raises(KeyError, match="did not record 'blocks.0.attn.q'"):
        write_query_key_projector(tmp_path, kept, [(0, 0)])
    with pytest.raises(FileNotFoundError, match="no projector_config.pbtxt"):
        read_projector(tmp_path / "missing")


def test_a_sentence_pair_probe_brings_its_types_mask_and_tokens(tmp_path):
    try:
        from minitransformer.pretrained import load_pretrained

        model, tok = load_pretrained("all-MiniLM-L6-v2")
    except FileNotFoundError as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")
    pair = tok("The cat sat.", "It was tired.")
    logger = TensorBoardLogger(tmp_path, probe_ids=pair, projector_heads=[(2, 0)])
    assert logger.probe_tokens == pair.tokens[0]
    logger.on_end(0, model, None, History())  # type: ignore[arg-type]  # no classifier needed
    _, trace = model.run_with_trace(pair)  # the types of segment B are 1
    png = read_images(tmp_path)["attention/layer_2/tokens"][0][1]
    expected = labelled_attention_image(trace["blocks.2.attn.weights"][0], pair.tokens[0])
    np.testing.assert_array_equal(decode(png), expected)
    with pytest.raises(ValueError, match="must hold one text and come alone"):
        TensorBoardLogger(tmp_path, probe_ids=tok(["a", "b"]))
