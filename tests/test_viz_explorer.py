"""The explorer's callbacks, driven from Python: set a widget, check what the figure now shows."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import PIL.Image
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.text import Text

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.tasks import get_task
from minitransformer.tokenizer import WordPieceTokenizer
from minitransformer.training import AttentionSnapshots, make_model, train
from viz.explorer import VIEWS, Explorer, agg_canvas, explore, render_png
from viz.query import breakdown_layout, query_breakdown, update_query_breakdown
from viz.style import PADDING_COLOR

TOKENS = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]


@pytest.fixture(scope="module")
def model() -> Encoder:
    config = EncoderConfig(vocab_size=20, d_model=16, n_heads=4, n_layers=2, d_ff=32)
    return Encoder(config, seed=3)


@pytest.fixture()
def explorer(model: Encoder) -> Explorer:
    return explore(model=model, token_ids=np.arange(len(TOKENS)), tokens=TOKENS)


def heatmap_axes(explorer: Explorer) -> list[Any]:
    """The heatmap view's panels: one, or the model as it is and the what-if."""
    return [ax for ax in explorer.figure.axes if ax.get_label() != "<colorbar>"]


def shown_image(explorer: Explorer) -> np.ndarray:
    """The weights drawn in the heatmap of the trace shown (the what-if's, in a comparison)."""
    return np.asarray(heatmap_axes(explorer)[-1].images[0].get_array())


def figure_state(fig: Figure) -> list[tuple[Any, ...]]:
    """What a reader sees in ``fig``, artist by artist (their places on the page aside): titles
    and axis labels, every image's values, masked cells and colour limits, texts, patches, line
    collections, points and tick labels (colour bars included)."""
    state: list[tuple[Any, ...]] = [("suptitle", fig.get_suptitle(), fig.get_supxlabel())]
    for ax in fig.axes:
        state.append(("axes", ax.get_label(), ax.get_title(), ax.title.get_color(),
                      ax.title.get_fontsize(), ax.get_xlabel(), ax.get_ylabel()))  # fmt: skip
        for image in ax.images:
            values = image.get_array()
            bar = image.colorbar
            state.append(("image", np.ma.getdata(values).tolist(),
                          np.ma.getmaskarray(values).tolist(), image.get_clim(),
                          None if bar is None else bar.extend))  # fmt: skip
        for text in ax.texts:
            anchor = getattr(text, "xy", None)  # an annotation's point
            state.append(("text", text.get_text(), tuple(text.get_position()), text.get_color(),
                          text.get_fontweight(), anchor))  # fmt: skip
        for patch in ax.patches:
            corners = patch.get_patch_transform().transform(patch.get_path().vertices)
            state.append(("patch", corners.round(9).tolist(), patch.get_hatch()))
        for collection in ax.collections:
            segments = getattr(collection, "get_segments", lambda: [])()
            state.append(("collection", [np.asarray(s).tolist() for s in segments],
                          collection.get_facecolor().tolist(), collection.get_edgecolor().tolist(),
                          np.asarray(collection.get_offsets()).tolist()))  # fmt: skip
        legend = ax.get_legend()
        if legend is not None:
            state.append(("legend", [t.get_text() for t in legend.get_texts()],
                          [line.get_color() for line in legend.get_lines()]))  # fmt: skip
        state.append(("limits", np.round([*ax.get_xlim(), *ax.get_ylim()], 9).tolist()))
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            state.append(("ticks", [(t.get_text(), t.get_color(), t.get_fontweight())
                                    for t in labels]))  # fmt: skip
    return state


def assert_same_figure(updated: Figure, fresh: Figure, in_place: bool = True) -> None:
    """The figure ``updated`` shows what a figure drawn anew shows. Both are drawn (so that
    colour bars and axes have chosen their ticks). A figure updated in place keeps the layout
    of its first drawing, where a new figure's layout would adapt to, e.g., wider tick labels
    (which changes the limits of equal-aspect axes): the new figure is then drawn with its
    axes at the same places."""
    if in_place:
        fresh.set_layout_engine("none")
        for ax, new_ax in zip(updated.axes, fresh.axes, strict=True):
            new_ax.set_position(ax.get_position(original=True))
    render_png(fresh)  # (``updated`` has been drawn after its update)
    a, b = figure_state(updated), figure_state(fresh)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x == y


def test_layer_and_head_controls_redraw_that_head(explorer: Explorer) -> None:
    explorer.layer.value = 1
    explorer.head.value = 2
    expected = explorer.trace["blocks.1.attn.weights"][0, 2]
    np.testing.assert_allclose(shown_image(explorer), expected)
    assert explorer.figure.axes[0].get_title() == "Layer 1, head 2: attention weights"
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"  # the widget shows the new PNG
    assert [t.get_text() for t in explorer.figure.axes[0].get_xticklabels()] == TOKENS


def test_every_view_draws_its_figure(explorer: Explorer) -> None:
    titles = {}
    for view in VIEWS:
        explorer.view.value = view
        titles[view] = " ".join(
            [explorer.figure.get_suptitle()] + [ax.get_title() for ax in explorer.figure.axes]
        )
    assert "Layer 0, head 0" in titles["heatmap"]
    assert "Step 1 of" in titles["step by step"]
    assert len(set(titles.values())) == len(VIEWS)  # five different figures


def test_head_view_follows_the_query_token(explorer: Explorer) -> None:
    explorer.view.value = "head view"
    explorer.head.value = 1
    explorer.query.value = 2
    lines = [c for c in explorer.figure.axes[0].collections if isinstance(c, LineCollection)]
    alphas = np.concatenate([c.get_colors()[:, 3] for c in lines])
    weights = explorer.trace["blocks.0.attn.weights"][0, 1, 2]
    # only query 2's lines are drawn, one per key, opacity growing with the weight
    assert np.count_nonzero(alphas) <= len(TOKENS)
    assert np.argmax(alphas) == np.argmax(weights)


def test_step_slider_walks_the_computation(explorer: Explorer) -> None:
    explorer.view.value = "step by step"
    assert explorer.step.layout.display is None  # the slider appears with its view
    seen = []
    for step in range(1, explorer.step.max + 1):
        explorer.step.value = step
        seen.append(explorer.figure.get_suptitle())
    assert seen[0].startswith("Step 1 of") and seen[-1].startswith(f"Step {explorer.step.max} of")
    explorer.view.value = "heatmap"
    assert explorer.step.layout.display == "none"


def test_query_breakdown_shows_the_selected_query(explorer: Explorer) -> None:
    explorer.view.value = "query breakdown"
    explorer.query.value = 3
    text = " ".join(
        [explorer.figure.get_suptitle()] + [a.get_title() for a in explorer.figure.axes]
    )
    assert "sat" in text


def test_masking_a_token_reruns_the_model(explorer: Explorer) -> None:
    explorer.masked.value = (3,)
    weights = explorer.trace["blocks.0.attn.weights"][0]
    assert np.all(weights[:, :, 3] == 0.0)  # nobody reads the masked token
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    drawn = heatmap_axes(explorer)[1].images[0].get_array()  # the what-if, beside the model
    assert np.ma.getmaskarray(drawn)[:, 3].all()  # drawn as masked cells


def test_switching_scaling_off_runs_the_model_without_it(explorer: Explorer) -> None:
    """The what-if "no scaling" is the model with ``scale_scores=False`` (its trace says so,
    and the scores are the recorded q·kᵀ); the temperature patches the scores, and the trace
    names them."""
    before = explorer.trace
    explorer.scale.value = False
    after = explorer.trace
    assert after.config.scale_scores is False and before.config.scale_scores is True
    assert after.patched == frozenset()  # nothing patched: the model computed these scores
    np.testing.assert_array_equal(after["blocks.0.attn.scores"], after["blocks.0.attn.qk"])
    np.testing.assert_allclose(after["blocks.0.attn.qk"], before["blocks.0.attn.qk"], rtol=1e-5)
    np.testing.assert_allclose(
        after["blocks.0.attn.scores"], before["blocks.0.attn.scores"] * np.sqrt(4), rtol=1e-5
    )
    explorer.scale.value = True
    assert explorer.trace is explorer.base_trace  # no what-if: the model as it is
    explorer.temperature.value = 2.0
    scores = explorer.trace["blocks.0.attn.scores"]
    np.testing.assert_allclose(scores, before["blocks.0.attn.scores"] / 2, rtol=1e-5)
    assert explorer.trace.patched == {"blocks.0.attn.scores", "blocks.1.attn.scores"}
    assert explorer.trace.config.scale_scores is True
    # the heatmap now shows the flatter weights of the re-run
    np.testing.assert_allclose(shown_image(explorer), explorer.trace["blocks.0.attn.weights"][0, 0])


def test_ablating_a_head_zeroes_its_output(explorer: Explorer) -> None:
    before = explorer.trace["blocks.1.out"].copy()
    explorer.ablated.value = ((0, 1),)
    assert not np.allclose(explorer.trace["blocks.1.out"], before)
    concat = explorer.trace["blocks.0.attn.concat"][0]  # (S, D): head 1 is columns 4..7
    assert np.all(concat[:, 4:8] == 0.0) and np.any(concat[:, :4] != 0.0)


def test_text_box_runs_new_text(model: Encoder) -> None:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog"]
    tokenizer = WordPieceTokenizer(vocab)
    explorer = explore(model=model, tokenizer=tokenizer, text="the cat sat")
    assert explorer.tokens == ["[CLS]", "the", "cat", "sat", "[SEP]"]
    explorer.text.value = "the dog sat on the mat"
    assert explorer.tokens == ["[CLS]", "the", "dog", "sat", "on", "the", "mat", "[SEP]"]
    assert shown_image(explorer).shape == (8, 8)
    assert [label for label, _ in explorer.query.options][1:3] == ["0: [CLS]", "1: the"]


def test_snapshots_play_heads_forming() -> None:
    task = get_task("reverse")
    model, classifier = make_model(task, seed=0)
    probe = task.generate(1, seed=7).token_ids
    snapshots = AttentionSnapshots(probe, every=10)
    train(model, classifier, task, steps=20, progress=False, callbacks=[snapshots])
    _, trace = model.run_with_trace(probe)
    explorer = explore(trace, snapshots=snapshots)
    assert explorer.play.max == len(snapshots.steps) - 1 == 2
    np.testing.assert_allclose(shown_image(explorer), snapshots.weights[0, 0, 0])
    explorer.head.value = 0
    explorer.snapshot.value = 2
    np.testing.assert_allclose(shown_image(explorer), snapshots.weights[2, 0, 0])
    assert "training step 20" in explorer.figure.axes[0].get_title()
    with pytest.raises(TypeError, match="AttentionSnapshots"):
        explore(trace, snapshots=[(0, snapshots.weights[0])])  # type: ignore[arg-type]


def test_without_a_model_the_what_if_controls_say_what_they_need(model: Encoder) -> None:
    _, trace = model.run_with_trace(np.arange(5))
    explorer = explore(trace)
    notes = [w.value for w in explorer.widget.children if isinstance(w, widgets.HTML)]
    text = " ".join(notes)
    assert "need the model" in text


def test_bad_arguments_are_named(model: Encoder) -> None:
    with pytest.raises(ValueError, match="token_ids"):
        explore(model=model)
    with pytest.raises(TypeError, match="Trace"):
        explore({"blocks.0.attn.weights": np.zeros((1, 1, 2, 2))})  # type: ignore[arg-type]
    _, trace = model.run_with_trace(np.arange(5))
    with pytest.raises(ValueError, match="tokens"):
        explore(trace, ["a", "b"])


def test_heatmap_title_names_the_what_if_settings_in_place_and_rebuilt(explorer: Explorer) -> None:
    explorer.temperature.value = 0.5
    explorer.scale.value = False
    # 8 tokens: the weights are written in the cells, so a re-run draws the heatmap anew
    weights = explorer.trace["blocks.0.attn.weights"][0, 0]
    assert heatmap_axes(explorer)[1].texts[0].get_text() == f"{weights[0, 0]:.2f}"
    expected = "what if: temperature 0.5, no 1/√d"
    assert heatmap_axes(explorer)[1].get_title() == expected
    assert heatmap_axes(explorer)[0].get_title() == "the model as it is"
    assert explorer.figure.get_suptitle() == "Layer 0, head 0: attention weights"
    figure = explorer.figure
    explorer.view.value = "head view"
    explorer.view.value = "heatmap"  # its figure kept (the same layout), updated
    assert explorer.figure is figure
    assert heatmap_axes(explorer)[1].get_title() == expected
    explorer.ablated.value = ((1, 3),)
    explorer.masked.value = (2,)  # another mask: drawn anew
    title = " ".join(heatmap_axes(explorer)[1].get_title().split())  # (wrapped)
    assert "masked cat" in title and "ablated L1 H3" in title and "temperature 0.5" in title
    explorer.temperature.value = 1.0
    explorer.scale.value = True
    explorer.ablated.value = ()
    explorer.masked.value = ()
    assert [ax.get_title() for ax in heatmap_axes(explorer)] == [
        "Layer 0, head 0: attention weights"
    ]


def test_a_what_if_is_drawn_beside_the_model_on_one_colour_scale(explorer: Explorer) -> None:
    """Temperature 0.2 sharpens every row: beside the model as it is, on the same colours."""
    image = heatmap_axes(explorer)[0].images[0]
    default_top = explorer.trace["blocks.0.attn.weights"][0, 0].max()
    assert image.get_clim() == pytest.approx((0.0, default_top)), "default: the head's maximum"
    for head in (0, 2):  # a what-if, then another head under it
        explorer.temperature.value = 0.2
        explorer.head.value = head
        base, what_if = heatmap_axes(explorer)
        expected = [explorer.base_trace, explorer.trace]
        for ax, trace in zip((base, what_if), expected, strict=True):
            shown = np.ma.getdata(ax.images[0].get_array())
            np.testing.assert_allclose(shown, trace["blocks.0.attn.weights"][0, head])
        top = max(t["blocks.0.attn.weights"][0, head].max() for t in expected)
        assert base.images[0].get_clim() == what_if.images[0].get_clim() == pytest.approx((0, top))
        assert "temperature 0.2" in what_if.get_title()
        bars = [ax for ax in explorer.figure.axes if ax.get_label() == "<colorbar>"]
        assert len(bars) == 1 and "one scale" in bars[0].get_ylabel()
        sharper = explorer.trace["blocks.0.attn.weights"][0, head].max(-1)
        assert np.all(sharper >= explorer.base_trace["blocks.0.attn.weights"][0, head].max(-1))
    assert "what if:</b>" in explorer.status.value and "temperature 0.2" in explorer.status.value
    explorer.temperature.value = 1.0
    assert len(heatmap_axes(explorer)) == 1


def test_long_inputs_update_the_title_and_scale_in_place(model: Encoder) -> None:
    tokens = [f"t{i}" for i in range(20)]  # more than ANNOTATE_MAX_TOKENS: no numbers in cells
    explorer = explore(model=model, token_ids=np.arange(20) % 20, tokens=tokens)
    explorer.temperature.value = 0.5  # a second panel: drawn anew
    figure = explorer.figure
    explorer.head.value = 1
    explorer.temperature.value = 0.25
    assert explorer.figure is figure, "the same figure, its data and title updated"
    base, what_if = heatmap_axes(explorer)
    assert what_if.get_title() == "what if: temperature 0.25"
    assert explorer.figure.get_suptitle() == "Layer 0, head 1: attention weights"
    top = explorer.trace["blocks.0.attn.weights"][0, 1].max()
    assert base.images[0].get_clim() == what_if.images[0].get_clim() == pytest.approx((0, top))
    np.testing.assert_allclose(shown_image(explorer), explorer.trace["blocks.0.attn.weights"][0, 1])


@pytest.mark.parametrize("causal", [False, True])
def test_query_breakdown_updated_in_place_equals_a_new_figure(causal: bool) -> None:
    config = EncoderConfig(vocab_size=20, d_model=16, n_heads=4, n_layers=2, d_ff=32,
                           causal=causal)  # fmt: skip
    _, trace = Encoder(config, seed=3).run_with_trace(np.arange(8)[None], [[1] * 7 + [0]])
    fig = query_breakdown(trace, 0, 0, 2, TOKENS)
    render_png(fig)  # drawn once, as the explorer does before updating
    for layer, head, query in ((1, 3, 5), (0, 1, 2)):
        same = breakdown_layout(trace, layer, head, query) == breakdown_layout(trace, 0, 0, 2)
        assert same == (not causal or query == 2)  # causal: each query sees other keys
        if same:
            update_query_breakdown(fig, trace, layer, head, query, TOKENS)
            render_png(fig)
            assert_same_figure(fig, query_breakdown(trace, layer, head, query, TOKENS))
        else:
            with pytest.raises(ValueError, match="draw it anew"):
                update_query_breakdown(fig, trace, layer, head, query, TOKENS)
            render_png(fig)


@pytest.mark.parametrize("n_tokens", [8, 20])  # 20: no numbers in the heatmap's cells
def test_every_redraw_in_place_shows_what_a_new_figure_shows(model: Encoder, n_tokens: int) -> None:
    tokens = [f"t{i}" for i in range(n_tokens)]
    explorer = explore(model=model, token_ids=np.arange(n_tokens) % 20, tokens=tokens)
    changes: list[tuple[Any, Any]] = [
        (explorer.head, 2), (explorer.query, 3), (explorer.layer, 1), (explorer.masked, (2,)),
        (explorer.temperature, 0.5), (explorer.query, None), (explorer.ablated, ((0, 1),)),
        (explorer.masked, (4, 5)), (explorer.view, "query breakdown"), (explorer.head, 1),
        (explorer.query, 6), (explorer.temperature, 2.0), (explorer.view, "step by step"),
        (explorer.head, 3), (explorer.step, 13), (explorer.head, 2), (explorer.layer, 0),
        (explorer.view, "head view"), (explorer.head, 0), (explorer.layer, 1),
        (explorer.view, "query-key space"), (explorer.head, 3), (explorer.view, "model view"),
        (explorer.head, 2),
    ]  # fmt: skip
    # 20 tokens: the heatmap and the query breakdown without numbers in their cells
    for widget, value in changes if n_tokens == 8 else changes[:10]:
        before = explorer.figure
        widget.value = value
        in_place = explorer.figure is before
        if widget in (explorer.layer, explorer.head) and explorer.view.value != "heatmap":
            assert in_place, f"{explorer.view.value}: {widget.description} {value}"
        assert_same_figure(explorer.figure, explorer.draw_figure(), in_place)


def shown_pixels(explorer: Explorer) -> np.ndarray:
    """The (height, width, 3) RGB pixels of the picture the explorer shows."""
    return np.asarray(PIL.Image.open(io.BytesIO(explorer.image.value)).convert("RGB"))


def assert_each_change_shows_a_full_drawing(
    explorer: Explorer, changes: Sequence[tuple[Any, Any]]
) -> None:
    """Set each (widget, value) in turn; after each, the picture shown (drawn over kept
    pixels) must be the pixels of the same figure drawn anew, in matplotlib's order."""
    for widget, value in changes:
        widget.value = value
        shown = shown_pixels(explorer)
        canvas = agg_canvas(explorer.figure)
        canvas.draw()  # everything drawn anew, in matplotlib's order
        drawn = np.asarray(canvas.buffer_rgba())[..., :3]
        np.testing.assert_array_equal(shown, drawn, err_msg=f"{widget.description} {value}")


def fresh_figure_pixels(explorer: Explorer) -> np.ndarray:
    """The RGB pixels of a new figure of the explorer's current state, drawn once."""
    fresh = np.asarray(PIL.Image.open(io.BytesIO(render_png(explorer.draw_figure()))))
    return fresh[..., :3]


@pytest.mark.parametrize("n_tokens", [8, 20])  # 8: numbers in the cells, 20: none
def test_query_breakdown_redrawn_over_kept_pixels_equals_a_full_drawing(
    model: Encoder, n_tokens: int
) -> None:
    tokens = [f"t{i}" for i in range(n_tokens)]
    explorer = explore(model=model, token_ids=np.arange(n_tokens) % 20, tokens=tokens)
    explorer.masked.value = (3,)
    explorer.view.value = "query breakdown"
    changes = [
        (explorer.head, 1), (explorer.query, 5), (explorer.temperature, 0.5), (explorer.query, 4),
        (explorer.layer, 1), (explorer.query, 0),
    ]  # fmt: skip
    assert_each_change_shows_a_full_drawing(explorer, changes)


def test_query_breakdown_of_a_long_input_shows_other_keys_in_the_same_figure() -> None:
    # past ALL_KEYS_MAX tokens each head and query shows its own key and the 16 others with
    # the largest weights: the figure is laid out once, with room for the widest label any of
    # them may show, and updated in place (a new figure at 128 tokens took half a second)
    from readability import text_problems

    from viz.query import ALL_KEYS_MAX

    config = EncoderConfig(vocab_size=20, d_model=16, n_heads=4, n_layers=2, d_ff=32, max_len=64)
    n_tokens = ALL_KEYS_MAX + 8
    tokens = [f"t{i}" for i in range(n_tokens)]
    tokens[29] = "a_much_longer_token"
    explorer = explore(model=Encoder(config, seed=3), token_ids=np.arange(n_tokens) % 20,
                       tokens=tokens)  # fmt: skip
    explorer.view.value = "query breakdown"
    figure = explorer.figure
    changes: list[tuple[Any, Any]] = [
        (explorer.head, 1), (explorer.head, 2), (explorer.query, 29), (explorer.layer, 1),
        (explorer.query, 5), (explorer.head, 0),
    ]  # fmt: skip
    rows = set()
    for change in changes:
        assert_each_change_shows_a_full_drawing(explorer, [change])
        assert explorer.figure is figure, change
        labels = explorer.figure.axes[0].get_yticklabels()
        rows.add(tuple(label.get_text() for label in labels))
        assert text_problems(explorer.figure) == [], change  # the labels fit, none clipped
    assert len(rows) > 3, "other heads and queries show other keys"
    assert "a_much_longer_token (29)" in {label for keys in rows for label in keys}
    bold = [t.get_text() for t in labels if t.get_fontweight() == "bold"]
    assert bold == ["t5 (5)"], "the query's own key, and only it, in bold"


@pytest.mark.parametrize("n_tokens", [20, 60])  # 60: every other label, dots at line ends
def test_head_view_redrawn_over_kept_pixels_equals_a_full_drawing(n_tokens: int) -> None:
    config = EncoderConfig(vocab_size=20, d_model=16, n_heads=4, n_layers=2, d_ff=32, max_len=64)
    model = Encoder(config, seed=3)
    tokens = [f"t{i}" for i in range(n_tokens)]
    explorer = explore(model=model, token_ids=np.arange(n_tokens) % 20, tokens=tokens)
    explorer.view.value = "head view"
    changes: list[tuple[Any, Any]] = [
        (explorer.head, 1), (explorer.layer, 1), (explorer.query, 3), (explorer.head, 2),
        (explorer.query, 4), (explorer.query, 0), (explorer.masked, (4,)), (explorer.query, 4),
        (explorer.head, 3), (explorer.query, 19), (explorer.query, None), (explorer.head, 0),
    ]  # fmt: skip
    assert_each_change_shows_a_full_drawing(explorer, changes)


@pytest.mark.parametrize(
    ("view", "n_tokens", "still_drawn"),
    [
        ("heatmap", 32, "Layer 0, head 3: attention weights"),  # the title is drawn
        ("head view", 20, "head 3"),  # the legend is drawn
    ],
)
def test_a_change_of_head_does_not_draw_the_token_labels_again(
    model: Encoder, monkeypatch: pytest.MonkeyPatch, view: str, n_tokens: int, still_drawn: str
) -> None:
    # drawing the token labels (2 x 32 tick labels in the heatmap) was most of a redraw: they
    # are drawn once per figure
    tokens = [f"t{i}" for i in range(n_tokens)]
    explorer = explore(model=model, token_ids=np.arange(n_tokens) % 20, tokens=tokens)
    explorer.view.value = view
    figure = explorer.figure
    drawn = texts_drawn(monkeypatch)
    for head in (1, 2, 3):
        explorer.head.value = head
    assert explorer.figure is figure
    assert not set(tokens) & set(drawn), "token labels drawn again on a change of head"
    assert still_drawn in drawn


@pytest.mark.parametrize("view", ["query breakdown", "model view", "heatmap"])
def test_a_new_figure_drawn_over_kept_pixels_is_the_picture_of_a_fresh_figure(
    model: Encoder, view: str
) -> None:
    # a new figure is laid out without drawing its pixels, then drawn once over its kept
    # pixels: the picture must be what a fresh figure's first full drawing gives
    tokens = [f"t{i}" for i in range(20)]
    explorer = explore(model=model, token_ids=np.arange(20) % 20, tokens=tokens)
    explorer.view.value = "head view"
    explorer.masked.value = (3,)  # the heatmap: a new figure with two panels
    explorer.view.value = view
    np.testing.assert_array_equal(shown_pixels(explorer), fresh_figure_pixels(explorer))


@pytest.mark.parametrize("n_tokens", [20, 32])  # 32: the labels across are closer together
def test_heatmap_redrawn_over_kept_pixels_equals_a_full_drawing(
    model: Encoder, n_tokens: int
) -> None:
    tokens = [f"t{i}" for i in range(n_tokens)]  # 20 or more: no numbers in the cells
    explorer = explore(model=model, token_ids=np.arange(n_tokens) % 20, tokens=tokens)
    changes: list[tuple[Any, Any]] = [
        (explorer.head, 1), (explorer.query, 3), (explorer.layer, 1), (explorer.query, None),
        (explorer.temperature, 0.5), (explorer.head, 2), (explorer.query, 5),
        (explorer.ablated, ((0, 1),)), (explorer.masked, (4,)), (explorer.masked, (4, 7)),
        (explorer.masked, (5, 7)), (explorer.masked, (6,)), (explorer.head, 3),
        (explorer.temperature, 1.0), (explorer.ablated, ()), (explorer.masked, ()),
    ]  # fmt: skip
    assert_each_change_shows_a_full_drawing(explorer, changes)


def texts_drawn(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list that every text matplotlib draws from now on is appended to."""
    drawn: list[str] = []
    draw = Text.draw

    def counting_draw(self: Text, renderer: Any) -> None:
        drawn.append(self.get_text())
        draw(self, renderer)

    monkeypatch.setattr(Text, "draw", counting_draw)
    return drawn


def test_masking_another_token_redraws_only_the_what_if_panels_labels(
    model: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a new masked token recolours the what-if panel's labels: those are drawn again, not the
    # whole figure (the model-as-it-is panel's labels, the axis labels) as before
    tokens = [f"t{i}" for i in range(32)]
    explorer = explore(model=model, token_ids=np.arange(32) % 20, tokens=tokens)
    explorer.masked.value = (4,)
    figure = explorer.figure
    drawn = texts_drawn(monkeypatch)
    explorer.masked.value = (4, 7)
    assert explorer.figure is figure
    assert drawn.count("t7") == 2, "t7's labels in the what-if panel, across and down, only"
    # of the what-if panel's 64 labels, the recoloured t7 (twice) and the neighbours that
    # reach into the boxes redrawn around it
    labels_drawn = [text for text in drawn if text in tokens]
    assert len(labels_drawn) <= 8 and set(labels_drawn) <= {"t6", "t7", "t8"}
    assert "key (attended to)" not in drawn and "query (attending)" not in drawn
    what_if = figure.axes[1]
    greyed = [label.get_text() for label in what_if.get_xticklabels()
              if label.get_color() == PADDING_COLOR]  # fmt: skip
    assert greyed == ["t4", "t7"]
    drawn.clear()
    explorer.head.value = 2  # beside the same masked tokens: their labels are kept pixels
    assert explorer.figure is figure and "t7" not in drawn


@pytest.mark.parametrize(
    ("view", "kept", "highlighted"),
    [
        # the key label of the query's own row, in bold
        ("query breakdown", ["key j"], lambda ax: [t for t in ax.get_yticklabels()
                                                   if t.get_fontweight() == "bold"]),
        # every token labelled: the query's label in the query column, framed
        ("head view", ["query", "key"], lambda ax: [t for t in ax.texts
                                                    if t.get_bbox_patch() is not None]),
    ],
)  # fmt: skip
def test_a_change_of_query_redraws_only_the_two_highlighted_labels(
    model: Encoder,
    monkeypatch: pytest.MonkeyPatch,
    view: str,
    kept: list[str],
    highlighted: Callable[[Axes], list[Text]],
) -> None:
    # another query highlights another token label: the figure is kept, and the old and the
    # new label (and neighbours reaching into the boxes around them) are drawn again, not
    # every token label, column title and axis label (at 32 tokens a query change took 190
    # ms in the query breakdown, 100 ms in the head view, where it was a new figure)
    tokens = [f"t{i}" for i in range(32)]
    explorer = explore(model=model, token_ids=np.arange(32) % 20, tokens=tokens)
    explorer.view.value = view
    explorer.query.value = 10
    figure = explorer.figure
    drawn = texts_drawn(monkeypatch)
    explorer.query.value = 20
    assert explorer.figure is figure
    labels_drawn = [text for text in drawn if text in tokens]
    assert {"t10", "t20"} <= set(labels_drawn)
    assert set(labels_drawn) <= {f"t{j}" for j in (9, 10, 11, 19, 20, 21)}
    assert not set(kept) & set(drawn), "the axis labels and headers are kept pixels"
    assert any("query 't20'" in text or "('t20')" in text for text in drawn), "title: new query"
    assert [t.get_text() for t in highlighted(figure.axes[0])] == ["t20"]


def test_a_view_shown_again_updates_its_kept_figure(model: Encoder) -> None:
    tokens = [f"t{i}" for i in range(20)]
    explorer = explore(model=model, token_ids=np.arange(20) % 20, tokens=tokens)
    heatmap = explorer.figure
    explorer.view.value = "query-key space"
    explorer.head.value = 2  # changed while the heatmap is not shown
    explorer.view.value = "heatmap"
    assert explorer.figure is heatmap, "switching back draws the heatmap's figure anew"
    assert_same_figure(explorer.figure, explorer.draw_figure())
    assert heatmap_axes(explorer)[0].get_title() == "Layer 0, head 2: attention weights"


def test_a_view_shown_again_unchanged_shows_its_last_picture_without_drawing(
    model: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = [f"t{i}" for i in range(20)]
    explorer = explore(model=model, token_ids=np.arange(20) % 20, tokens=tokens)
    pictures = {}
    for view in ("heatmap", "head view", "query breakdown"):
        explorer.view.value = view
        pictures[view] = explorer.image.value
    drawn = texts_drawn(monkeypatch)
    for view in ("heatmap", "head view", "query breakdown"):
        explorer.view.value = view
        assert explorer.image.value == pictures[view], view
    assert drawn == [], "a picture drawn again though nothing it shows changed"
    # what it shows changed while another view was up: drawn again, as a new figure would be
    explorer.ablated.value = ((0, 1),)  # a re-run: a new trace
    explorer.head.value = 3
    for view in ("heatmap", "head view"):
        explorer.view.value = view
        assert explorer.image.value != pictures[view], view
        np.testing.assert_array_equal(
            shown_pixels(explorer), fresh_figure_pixels(explorer), err_msg=view
        )


def test_a_re_run_with_the_same_settings_is_drawn_again() -> None:
    # the same settings, but a new trace (the model could have changed in between): the
    # picture is never taken from before on equal-looking controls alone
    model = Encoder(EncoderConfig(vocab_size=20, d_model=16, n_heads=4, n_layers=2, d_ff=32))
    tokens = [f"t{i}" for i in range(20)]
    explorer = explore(model=model, token_ids=np.arange(20) % 20, tokens=tokens)
    explorer.masked.value = (4,)
    first_trace = explorer.trace
    explorer.view.value = "head view"
    model.params["blocks.0.attn.W_Q"] *= 3.0  # an instructor edits a weight
    explorer.masked.value = ()
    explorer.masked.value = (4,)  # a new run of the edited model
    assert explorer.trace is not first_trace
    explorer.view.value = "heatmap"
    what_if = explorer.figure.axes[1].images[0].get_array()
    np.testing.assert_allclose(
        np.ma.filled(what_if, 0),
        np.where(np.ma.getmaskarray(what_if), 0, explorer.trace["blocks.0.attn.weights"][0, 0]),
    )


def test_masking_another_token_updates_the_what_if_heatmap_in_place(model: Encoder) -> None:
    tokens = [f"t{i}" for i in range(20)]  # 20: no numbers in the cells, figures kept
    explorer = explore(model=model, token_ids=np.arange(20) % 20, tokens=tokens)
    explorer.ablated.value = ((0, 1),)  # the what-if beside the model as it is
    figure = explorer.figure
    explorer.masked.value = (4,)
    explorer.masked.value = (7,)
    assert explorer.figure is figure, "a new figure for each masked token"
    assert_same_figure(explorer.figure, explorer.draw_figure())
    grey = [t.get_text() for t in heatmap_axes(explorer)[1].get_xticklabels()
            if t.get_color() == PADDING_COLOR]  # fmt: skip
    assert grey == ["t7"]


def test_a_what_if_re_run_uses_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # one BLAS thread for a sentence's small matrices (waiting BLAS threads on a busy machine
    # can make a 10 ms pass take seconds), and the limit is lifted after the run
    from threadpoolctl import threadpool_info, threadpool_limits

    model = Encoder(EncoderConfig(vocab_size=20, d_model=16, n_heads=4, n_layers=2, d_ff=32))
    explorer = explore(model=model, token_ids=np.arange(8), tokens=[f"t{i}" for i in range(8)])
    seen: list[int] = []
    run = Encoder.run_with_trace

    def counting_run(self: Encoder, *args: Any, **kwargs: Any) -> Any:
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return run(self, *args, **kwargs)

    monkeypatch.setattr(Encoder, "run_with_trace", counting_run)
    with threadpool_limits(limits=2, user_api="blas"):
        explorer.masked.value = (3,)
        after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert seen and set(seen) == {1}
    assert set(after) == {2}
