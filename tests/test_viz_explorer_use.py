"""The explorer in normal and careless use, driven as a user drives it: set a control, then the
next, and check that every control keeps working and shows the truth."""

from __future__ import annotations

import io
import math

import numpy as np
import PIL.Image
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.tasks import get_task
from minitransformer.tokenizer import WordPieceTokenizer
from minitransformer.training import AttentionSnapshots, make_model, train
from viz.explorer import (
    ALL_TOKENS,
    DPI,
    MIN_TEMPERATURE,
    VIEWS,
    Explorer,
    explore,
    render_png,
    what_if_arguments,
    what_if_model,
)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog"]
CONFIG = EncoderConfig(vocab_size=20, d_model=16, n_heads=4, n_layers=2, d_ff=32)
#: A padded batch: the second sentence has 3 real tokens and 2 [PAD].
BATCH_IDS = [[2, 5, 6, 7, 3], [2, 10, 3, 0, 0]]
BATCH_MASK = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]


@pytest.fixture(scope="module")
def model() -> Encoder:
    return Encoder(CONFIG, seed=3)


@pytest.fixture(scope="module")
def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer(VOCAB)


def heatmap_axes(explorer: Explorer) -> list:
    return [ax for ax in explorer.figure.axes if ax.get_label() != "<colorbar>"]


# ------------------------------------------------------------------ the text box


@pytest.mark.parametrize("view", list(VIEWS))
def test_a_new_text_of_another_length_after_picking_a_query(
    model: Encoder, tokenizer: WordPieceTokenizer, view: str
) -> None:
    """Today: ValueError "tokens has 5 entries but the trace has 8 positions", and every
    control keeps failing. The query and the masked tokens belong to the old text: cleared."""
    explorer = explore(model=model, tokenizer=tokenizer, text="the cat sat on the mat")
    explorer.view.value = view
    explorer.query.value = 6
    explorer.masked.value = (5,)
    explorer.text.value = "the dog sat"  # shorter
    assert explorer.tokens == ["[CLS]", "the", "dog", "sat", "[SEP]"]
    assert explorer.selected_query is None and explorer.query.label == "all tokens"
    assert explorer.masked.value == () and explorer.trace is explorer.base_trace
    assert explorer.trace["blocks.0.attn.weights"].shape[-1] == 5
    assert "Not run" not in explorer.status.value
    for widget, value in ((explorer.query, 4), (explorer.head, 1), (explorer.masked, (1,)),
                          (explorer.layer, 1), (explorer.temperature, 0.5)):  # fmt: skip
        widget.value = value  # every control works on the new text
    explorer.text.value = "the cat sat on the mat on the mat"  # longer, under a what-if
    assert explorer.selected_query is None and explorer.masked.value == ()
    assert explorer.trace.token_ids.shape == (1, 11)
    assert explorer.trace.patched, "the temperature still applies to the new text"
    explorer.query.value = 10
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_text_the_model_cannot_read_is_refused_in_the_status(
    model: Encoder, tokenizer: WordPieceTokenizer
) -> None:
    explorer = explore(model=model, tokenizer=tokenizer, text="the cat sat")
    explorer.text.value = "the " * 100  # longer than max_len = 64
    assert "Not run" in explorer.status.value and "64" in explorer.status.value
    assert explorer.tokens == ["[CLS]", "the", "cat", "sat", "[SEP]"]  # the old text stays
    explorer.head.value = 2
    assert "Not run" not in explorer.status.value


def test_the_text_box_shows_the_plain_text(model: Encoder, tokenizer: WordPieceTokenizer) -> None:
    """Today the box holds "[CLS] the cat sat [SEP]": editing a word and pressing Enter runs
    "[CLS] [CLS] the dog sat [SEP] [SEP]"."""
    explorer = explore(model=model, tokenizer=tokenizer, text="the cat sat")
    assert explorer.text.value == "the cat sat"
    explorer.text.value = explorer.text.value.replace("cat", "dog")  # edit a word, Enter
    assert explorer.tokens == ["[CLS]", "the", "dog", "sat", "[SEP]"]
    ids = tokenizer(["the mat"]).input_ids
    tokens = ["[CLS]", "the", "mat", "[SEP]"]
    from_ids = explore(model=model, tokenizer=tokenizer, token_ids=ids, tokens=tokens)
    assert from_ids.text.value == "the mat"


# ------------------------------------------------------------------ the hint, the PNG


def test_the_hint_for_the_what_if_controls_is_a_call_that_works(model: Encoder) -> None:
    _, trace = model.run_with_trace(BATCH_IDS, BATCH_MASK)
    tokens = ["[CLS]", "dog", "[SEP]", "[PAD]", "[PAD]"]
    without = explore(trace, tokens, batch=1)
    notes = " ".join(w.value for w in without.widget.children if hasattr(w, "value")
                     and isinstance(w.value, str))  # fmt: skip
    assert "explore(trace, tokens, model=model)" in notes
    explorer = explore(trace, tokens, model=model, batch=1)  # today: ValueError
    explorer.temperature.value = 0.5  # re-runs the trace's own inputs, padding included
    np.testing.assert_array_equal(explorer.trace.token_ids, trace.token_ids)
    np.testing.assert_array_equal(explorer.trace.padding_mask, trace.padding_mask)
    other = Encoder(EncoderConfig(vocab_size=20, d_model=8, n_heads=2, n_layers=2, d_ff=16))
    with pytest.raises(ValueError, match="config"):
        explore(trace, tokens, model=other)
    _, patched = model.run_with_trace(BATCH_IDS, BATCH_MASK, head_mask=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="head_mask"):
        explore(patched, tokens, model=model)
    explore(trace, tokens, model=model, token_ids=BATCH_IDS)  # its own ids: the mask is kept
    with pytest.raises(ValueError, match="differ from the trace"):
        explore(trace, tokens, model=model, token_ids=BATCH_IDS, mask=np.ones((2, 5), int))
    with pytest.raises(ValueError, match="differ from the trace"):
        explore(trace, tokens, model=model, token_ids=np.zeros((2, 5), int))


@pytest.mark.parametrize("pixel_ratio", [1, 2])
def test_the_png_is_drawn_at_the_size_shown_times_the_pixel_ratio(
    model: Encoder, pixel_ratio: int
) -> None:
    """Today a 72-dpi PNG shown as is: scaled up (blurred) by a high-DPI browser."""
    explorer = explore(model=model, token_ids=np.arange(8), pixel_ratio=pixel_ratio)
    for view in VIEWS:
        explorer.view.value = view
        width, height = PIL.Image.open(io.BytesIO(explorer.image.value)).size
        shown = int(explorer.image.width)
        assert shown == round(explorer.figure.get_figwidth() * DPI)
        assert abs(width - pixel_ratio * shown) <= pixel_ratio, view
        assert abs(height - pixel_ratio * explorer.figure.get_figheight() * DPI) <= pixel_ratio
    with pytest.raises(ValueError, match="pixel_ratio"):
        explore(model=model, token_ids=np.arange(8), pixel_ratio=0)


# ------------------------------------------------------------------ what-if arguments


@pytest.mark.parametrize("temperature", [-1.0, 0, 0.0, 1e-40, MIN_TEMPERATURE / 2, math.nan,
                                         math.inf, -math.inf, np.float32("nan")])  # fmt: skip
def test_a_temperature_that_would_invert_divide_by_zero_or_overflow_is_refused(
    temperature: float,
) -> None:
    """Today -1 inverts attention silently, 0 raises ZeroDivisionError, 1e-40 and NaN give
    NaN weights."""
    with pytest.raises(ValueError, match="temperature"):
        what_if_arguments(CONFIG, temperature=temperature)


@pytest.mark.parametrize("temperature", ["0.5", None, True, [0.5]])
def test_a_temperature_that_is_no_number_is_refused(temperature: object) -> None:
    with pytest.raises(TypeError, match="temperature"):
        what_if_arguments(CONFIG, temperature=temperature)  # type: ignore[arg-type]


@pytest.mark.parametrize("temperature", [MIN_TEMPERATURE, 0.2, 1, np.float32(2.0), 10.0])
def test_a_valid_temperature_gives_finite_weights(model: Encoder, temperature: float) -> None:
    arguments = what_if_arguments(CONFIG, temperature=temperature)
    _, trace = model.run_with_trace(np.arange(8), **arguments)
    _, base = model.run_with_trace(np.arange(8))
    weights = trace["blocks.1.attn.weights"]
    assert np.all(np.isfinite(weights))
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    if temperature != 1:
        expected = base["blocks.0.attn.scores"] / temperature
        np.testing.assert_allclose(trace["blocks.0.attn.scores"], expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("ablated", "error", "match"),
    [
        ([(2, 0)], IndexError, "ablated layer"),
        ([(-1, 0)], IndexError, "ablated layer"),
        ([(0, 4)], IndexError, "ablated head"),
        ([(0, 1.5)], TypeError, "ablated head"),
        ([(0,)], TypeError, "ablated"),
        ([3], TypeError, "ablated"),
    ],
)
def test_ablated_heads_out_of_range_are_refused(ablated: list, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        what_if_arguments(CONFIG, ablated=ablated)


def test_what_if_arguments_and_model() -> None:
    assert what_if_arguments(CONFIG) == {}
    arguments = what_if_arguments(CONFIG, temperature=0.5, ablated=[(1, 3)])
    divide = arguments["patch"]["blocks.1.attn.scores"]
    assert divide(np.ones(1))[0] == pytest.approx(2.0)
    assert arguments["head_mask"].sum() == 7 and arguments["head_mask"][1, 3] == 0
    model = Encoder(CONFIG)
    assert what_if_model(model, scale=True) is model
    unscaled = what_if_model(model, scale=False)
    assert unscaled.config.scale_scores is False and model.config.scale_scores is True
    assert unscaled.params is model.params  # the same weights, not a copy
    with pytest.raises(TypeError, match="scale"):
        what_if_model(model, scale="no")  # type: ignore[arg-type]


# ------------------------------------------------------------------ batches and padding


def test_a_batch_is_run_as_a_batch_and_padding_is_never_a_query(model: Encoder) -> None:
    """Today ``token_ids=[[...], [...]]`` is flattened into one sequence: the two sentences
    attend to each other."""
    tokens = ["[CLS]", "dog", "[SEP]", "[PAD]", "[PAD]"]
    explorer = explore(model=model, token_ids=BATCH_IDS, mask=BATCH_MASK, tokens=tokens, batch=1)
    weights = explorer.trace["blocks.1.attn.weights"]
    assert weights.shape == (2, 4, 5, 5)
    _, alone = model.run_with_trace([BATCH_IDS[1][:3]])  # the sentence without the other
    np.testing.assert_allclose(weights[1, :, :3, :3], alone["blocks.1.attn.weights"][0],
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert [value for _, value in explorer.query.options] == [ALL_TOKENS, 0, 1, 2]
    assert [value for _, value in explorer.masked.options] == [0, 1, 2]
    np.testing.assert_allclose(np.ma.getdata(heatmap_axes(explorer)[0].images[0].get_array()),
                               explorer.trace["blocks.0.attn.weights"][1, 0])  # fmt: skip
    explorer.masked.value = (1,)
    np.testing.assert_array_equal(explorer.trace.padding_mask,
                                  [[1, 1, 1, 1, 1], [1, 0, 1, 0, 0]])  # fmt: skip
    for view in VIEWS:  # every view draws sequence 1
        explorer.view.value = view
        render_png(explorer.figure)
    explorer.view.value = "query breakdown"
    assert "[CLS]" in explorer.figure.get_suptitle() + explorer.figure.axes[0].get_title()


@pytest.mark.parametrize("token_ids", [np.zeros((1, 2, 3), int), np.zeros((0,), int)])
def test_token_ids_of_another_shape_are_refused(model: Encoder, token_ids: object) -> None:
    with pytest.raises(ValueError, match="token_ids"):
        explore(model=model, token_ids=token_ids)


@pytest.mark.parametrize("batch", [2, -1])
def test_a_batch_index_out_of_range_is_refused(model: Encoder, batch: int) -> None:
    with pytest.raises(IndexError, match="batch"):
        explore(model=model, token_ids=BATCH_IDS, mask=BATCH_MASK, batch=batch)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"text": "the cat"}, "tokenizer"),
        ({"token_ids": [1, 2, 3]}, "model"),
        ({"model": "a model", "token_ids": [1, 2]}, "Encoder"),
    ],
)
def test_options_that_need_another_one_say_which(options: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        explore(**options)


# ------------------------------------------------------------------ views and controls


@pytest.mark.parametrize("left", [0, 1])  # no token left, one token left
def test_the_query_key_space_with_every_token_masked_says_so(model: Encoder, left: int) -> None:
    """Today ``ValueError: need d_head >= 2 and at least 3 points``."""
    explorer = explore(model=model, token_ids=np.arange(8))
    explorer.view.value = "query-key space"
    explorer.masked.value = tuple(range(left, 8))
    note = " ".join(" ".join(t.get_text() for t in explorer.figure.axes[0].texts).split())
    expected = "every token is masked" if left == 0 else "only 1 token left unmasked"
    assert expected in note
    explorer.head.value = 3  # the other controls keep working
    explorer.query.value = 2
    explorer.masked.value = ()
    assert len(explorer.figure.axes[0].collections) >= 2  # the points are back


def test_the_query_breakdown_of_a_masked_query_says_so(model: Encoder) -> None:
    """A masked token is padding in the what-if: its row is no attention (the breakdown
    refuses it); "all tokens" breaks down the first token left."""
    tokens = ["[CLS]", "the", "cat", "sat", "[SEP]"]
    explorer = explore(model=model, token_ids=np.arange(5), tokens=tokens)
    explorer.view.value = "query breakdown"
    explorer.masked.value = (0,)
    titles = explorer.figure.get_suptitle() + " ".join(a.get_title() for a in explorer.figure.axes)
    assert "'the'" in titles and "(position 1)" in titles
    explorer.query.value = 2
    explorer.masked.value = (0, 2)
    note = " ".join(" ".join(t.get_text() for t in explorer.figure.axes[0].texts).split())
    assert "query 2 (cat) is masked" in note
    explorer.head.value = 3  # the other controls keep working
    explorer.query.value = 3
    assert "'sat'" in explorer.figure.get_suptitle()
    explorer.masked.value = (0, 1, 2, 3, 4)
    assert "every token is masked" in " ".join(explorer.figure.axes[0].texts[0].get_text().split())


def test_the_query_control_starts_at_all_tokens(model: Encoder) -> None:
    """Today its value None reads as "nothing selected": a blank control."""
    explorer = explore(model=model, token_ids=np.arange(6))
    assert explorer.query.index == 0 and explorer.query.label == "all tokens"
    assert explorer.selected_query is None
    explorer.query.value = 3
    assert explorer.selected_query == 3
    explorer.query.value = ALL_TOKENS
    assert explorer.selected_query is None
    assert explorer.figure.axes[0].lines[0].get_visible() is False  # no underlined row


def test_snapshot_controls_show_with_the_heatmap_labelled_with_tokens() -> None:
    task = get_task("reverse")
    model, _ = make_model(task, seed=0)
    probe = task.generate(1, seed=7).token_ids
    snapshots = AttentionSnapshots(probe, every=10)
    train(model, make_model(task, seed=0)[1], task, steps=10, progress=False,
          callbacks=[snapshots])  # fmt: skip
    _, trace = model.run_with_trace(probe)
    tokens = [f"w{i}" for i in range(probe.shape[-1])]
    explorer = explore(trace, tokens, snapshots=snapshots)
    assert explorer.snapshot_row.layout.display is None
    assert [t.get_text() for t in explorer.figure.axes[0].get_xticklabels()] == tokens
    for view in VIEWS:
        explorer.view.value = view
        shown = explorer.snapshot_row.layout.display is None
        assert shown == (view == "heatmap"), view  # the slider moves only the heatmap
    with pytest.raises(ValueError, match="snapshots"):
        explore(trace, tokens, snapshots=snapshots, model=model)
    _, shorter = model.run_with_trace(probe[..., :4])
    with pytest.raises(ValueError, match="tokens"):
        explore(shorter, snapshots=snapshots)


#: Tokens that markup would mangle: mathtext ("$x$" drawn as an italic x), HTML, a lone
#: surrogate. ("$\\frac{1}{$", which mathtext cannot parse, is tested by the figures: the
#: heatmap's tick labels are theirs.)
HOSTILE = ["[CLS]", "$x$", "<b>", "a$b$c", "$\\alpha$", "\udc80", "[SEP]"]


def test_tokens_are_shown_literally_in_controls_titles_and_status(model: Encoder) -> None:
    explorer = explore(model=model, token_ids=np.arange(len(HOSTILE)), tokens=HOSTILE)
    labels = [label for label, _ in explorer.query.options][1:]
    assert labels[:5] == ["0: [CLS]", "1: $x$", "2: <b>", "3: a$b$c", "4: $\\alpha$"]
    assert labels[5] == "5: \\udc80"  # a lone surrogate, written as its escape
    explorer.masked.value = (1, 2, 3, 4, 5)  # the what-if title names the masked tokens
    title = heatmap_axes(explorer)[1].title
    assert "$x$ <b> a$b$c $\\alpha$" in " ".join(title.get_text().split())
    assert title.get_parse_math() is False  # as mathtext, "$x$" is an italic x
    status = explorer.status.value
    assert "&lt;b&gt;" in status and "<b><" not in status and "mathjax_ignore" in status
