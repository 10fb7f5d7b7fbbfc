"""Explore attention interactively: an ipywidgets application around the figures of :mod:`viz`.

``viz.explore(trace, tokens)`` shows one figure at a time and a row of controls: which layer and
head, which view (heatmap, head view, model view, step by step, query breakdown, query-key
space), which query token to focus, which step of the attention computation to show. Given a
model (and a tokenizer, for a text box), the what-if controls re-run the model and redraw:
switch the 1/sqrt(d_head) scaling off, change the softmax temperature, mask tokens, ablate heads.
Given attention snapshots recorded during training, a play control animates heads forming.

Everything is standard ipywidgets 8 (no custom front-end): the figure is drawn by matplotlib's
Agg renderer into PNG bytes shown by a ``widgets.Image``, so it works in JupyterLab, Notebook 7,
VS Code and Colab alike. The callbacks are plain methods, so tests (and curious students) can
drive the explorer from Python: set ``explorer.layer.value = 2`` and look at
``explorer.figure``.
"""

from __future__ import annotations

import io
import textwrap
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import PIL.Image
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from threadpoolctl import threadpool_limits

from minitransformer.encoder import Encoder
from minitransformer.trace import Trace
from minitransformer.training import AttentionSnapshots
from viz.head_view import head_view, update_head_view
from viz.heatmap import attention_heatmap, hatch_masked, head_pattern, remove_hatches
from viz.model_view import model_view
from viz.qk_space import qk_space, update_qk_space
from viz.query import breakdown_layout, query_breakdown, update_query_breakdown
from viz.steps import attention_step_frame, step_panels, update_step_frame
from viz.style import (
    ANNOTATE_MAX_TOKENS,
    HIGHLIGHT_COLOR,
    check_batch,
    figure_of,
    token_labels,
    weight_limit,
    weights_cmap,
)

#: The views, in the order of the view switch: label -> what it draws.
VIEWS = {
    "heatmap": "one head's weights, queries down and keys across",
    "head view": "lines from each query to the keys it reads, opacity = weight",
    "model view": "every head of every layer at a glance",
    "step by step": "one stage of the computation: X -> Q, K, V -> scores -> softmax -> z",
    "query breakdown": "one query's dot products, softmax and weighted sum of values",
    "query-key space": "queries and keys of one head in one plane (AttentionViz)",
}

#: Resolution of the PNG the explorer shows (dots per inch); lower redraws faster.
DPI = 72
#: The heatmap's title wraps after this many characters (what-if settings can make it long).
TITLE_CHARS = 60


def agg_canvas(fig: Figure) -> FigureCanvasAgg:
    """The figure's Agg canvas (attached on first use): draws into an RGBA pixel buffer."""
    return fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)


def render_png(fig: Figure) -> bytes:
    """Draw ``fig`` with matplotlib's Agg renderer and return it as PNG bytes.

    The first draw lays the figure out (constrained layout); the layout is then kept, so
    redrawing after a data update costs only the drawing.
    """
    canvas = agg_canvas(fig)
    canvas.draw()
    fig.set_layout_engine("none")
    return png_bytes(canvas)


def png_bytes(canvas: FigureCanvasAgg) -> bytes:
    """The canvas's pixels as PNG, compression level 1 (larger, several times faster), in RGB:
    the figures are opaque, and three channels encode about 15 % faster than four."""
    buffer = io.BytesIO()
    width, height = canvas.get_width_height()
    pixels = PIL.Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba())
    pixels.convert("RGB").save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


class Explorer:
    """The attention explorer: controls, the current figure, and the callbacks that redraw it.

    Parameters
    ----------
    trace : Trace, optional
        What to show. Optional when ``model`` and ``tokenizer`` are given with ``text``.
    tokens : sequence of str, optional
        Token strings (length S) for the labels; default positions 0 .. S-1.
    model : Encoder, optional
        Enables the what-if controls, which re-run this model on ``token_ids``.
    token_ids : int array of shape (S,) or (1, S), optional
        The model's input for the what-if controls (required with ``model`` unless a
        ``tokenizer`` makes them from ``text``).
    tokenizer : WordPieceTokenizer, optional
        With ``model``: adds a text box; pressing Enter runs the model on the new text.
    text : str, optional
        The first text to run (with ``model`` and ``tokenizer``).
    snapshots : AttentionSnapshots, optional
        Attention recorded during training by
        :class:`~minitransformer.training.AttentionSnapshots` (its ``steps`` and ``weights``
        of shape (n_snapshots, n_layers, n_heads, S, S)); adds a play control that animates
        the selected head forming.
    batch : int
        Which sequence of a batched trace to show.

    Attributes
    ----------
    trace : Trace
        The trace currently shown (re-made by the what-if controls).
    figure : matplotlib Figure
        The figure currently shown.
    redraw_ms : float
        How long the last redraw took (building the figure and rendering the PNG).
    layer, head, view, query, step, scale, temperature, masked, ablated, play : widgets
    """

    def __init__(
        self,
        trace: Trace | None = None,
        tokens: Sequence[str] | None = None,
        *,
        model: Encoder | None = None,
        token_ids: Any = None,
        tokenizer: Any = None,
        text: str | None = None,
        snapshots: AttentionSnapshots | None = None,
        batch: int = 0,
    ):
        self.model = model
        self.tokenizer = tokenizer
        if tokenizer is not None and model is None:
            raise ValueError("a tokenizer needs a model to run: pass model=... as well")
        if model is not None and tokenizer is not None and text is not None:
            token_ids, tokens = self._tokenize(text)
        if model is not None:
            if token_ids is None:
                raise ValueError("with a model, pass token_ids=... (or tokenizer=... and text=...)")
            self.token_ids = np.asarray(token_ids).reshape(1, -1)
            if trace is None:
                _, trace = model.run_with_trace(self.token_ids)
        if trace is None:
            raise ValueError("pass a trace, or a model with token_ids (or tokenizer and text)")
        if not isinstance(trace, Trace):
            raise TypeError(f"trace must be a minitransformer Trace, got {type(trace).__name__}")
        self.batch = check_batch(trace, batch, "blocks.0.attn.weights")
        self.base_trace = trace
        self.trace = trace
        self.tokens = token_labels(tokens, trace["blocks.0.attn.weights"].shape[-1])
        self.snapshots: list[tuple[int, np.ndarray]] = []  # (step, (L, H, S, S) weights)
        if snapshots is not None:
            if not isinstance(snapshots, AttentionSnapshots):
                raise TypeError(
                    f"snapshots must be an AttentionSnapshots, got {type(snapshots).__name__}"
                )
            self.snapshots = list(zip(snapshots.steps, snapshots.weights, strict=True))
        self.figure: Figure = Figure()
        self.redraw_ms = 0.0
        self._layout: tuple[Any, ...] | None = None
        self._grid_pixels: Any = None  # the model view's pixels without the highlight
        # the query breakdown's pixels without its data, and the state they were drawn for
        self._breakdown_pixels: tuple[Any, Any] = (None, None)
        self._build_controls()
        self.redraw()

    # ------------------------------------------------------------------ controls
    def _build_controls(self) -> None:
        cfg = self.trace.config
        self.view = widgets.ToggleButtons(options=list(VIEWS), value="heatmap", description="view")
        self.layer = widgets.Dropdown(options=list(range(cfg.n_layers)), description="layer")
        self.head = widgets.Dropdown(options=list(range(cfg.n_heads)), description="head")
        self.query = widgets.Dropdown(
            options=self._query_options(), value=None, description="query"
        )
        n_steps = len(step_panels(self.trace, 0, 0, self._params(), batch=self.batch))
        self.step = widgets.IntSlider(value=1, min=1, max=n_steps, description="step")
        self.image = widgets.Image(format="png")
        self.status = widgets.HTML()
        for control in (self.view, self.layer, self.head, self.query, self.step):
            control.observe(self._on_change, names="value")
        rows: list[widgets.Widget] = []
        if self.tokenizer is not None:
            self.text = widgets.Text(
                value=" ".join(self.tokens), description="text", continuous_update=False
            )
            self.text.observe(self._on_text, names="value")
            rows.append(self.text)
        rows += [self.view, widgets.HBox([self.layer, self.head, self.query]), self.step]
        rows += self._what_if_controls()
        rows += self._snapshot_controls()
        rows += [self.image, self.status]
        self.widget = widgets.VBox(rows)

    def _query_options(self) -> list[tuple[str, int | None]]:
        return [("all tokens", None)] + [(f"{i}: {t}", i) for i, t in enumerate(self.tokens)]

    def _what_if_controls(self) -> list[widgets.Widget]:
        """Controls that re-run the model: only with a model."""
        self.scale = widgets.Checkbox(value=True, description="divide scores by sqrt(d_head)")
        self.temperature = widgets.FloatLogSlider(
            value=1.0, base=10, min=-1, max=1, step=0.05, description="temperature"
        )
        self.masked = widgets.SelectMultiple(
            options=self._query_options()[1:], description="mask tokens", rows=4
        )
        self.ablated = widgets.SelectMultiple(
            options=[
                (f"L{l} H{h}", (l, h))
                for l in range(self.trace.config.n_layers)
                for h in range(self.trace.config.n_heads)
            ],
            description="ablate heads",
            rows=4,
        )
        if self.model is None:
            return [
                widgets.HTML("<i>What-if controls need the model: explore(trace, model=...)</i>")
            ]
        for control in (self.scale, self.temperature, self.masked, self.ablated):
            control.observe(self._on_what_if, names="value")
        box = widgets.VBox(
            [
                widgets.HBox([self.scale, self.temperature]),
                widgets.HBox([self.masked, self.ablated]),
            ]
        )
        what_if = widgets.Accordion(children=[box], titles=("what if…",))
        return [what_if]

    def _snapshot_controls(self) -> list[widgets.Widget]:
        """A play button and slider over training snapshots: only with snapshots."""
        self.play = widgets.Play(min=0, max=max(len(self.snapshots) - 1, 0), interval=300)
        self.snapshot = widgets.IntSlider(
            min=0, max=max(len(self.snapshots) - 1, 0), description="snapshot"
        )
        if not self.snapshots:
            return []
        widgets.jslink((self.play, "value"), (self.snapshot, "value"))
        self.snapshot.observe(self._on_change, names="value")
        return [widgets.HBox([self.play, self.snapshot])]

    # ----------------------------------------------------------------- callbacks
    def _on_change(self, change: dict[str, Any]) -> None:
        self.redraw()

    def _on_text(self, change: dict[str, Any]) -> None:
        self.token_ids, tokens = self._tokenize(change["new"])
        self.tokens = list(tokens)
        self.query.options = self._query_options()
        self.masked.options = self._query_options()[1:]
        self._rerun()

    def _on_what_if(self, change: dict[str, Any]) -> None:
        self._rerun()

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        """Show the current view: update the figure in place when only its data changed,
        otherwise draw a new figure; then render it as a PNG for the image widget.

        Why: building a figure (axes, ticks, colour bars) and laying it out costs more than
        drawing it, often several times more; issue 6 asks for a redraw under 100 ms at 32
        tokens. So each view keeps its figure while its layout (see ``_layout_key``) stays:
        another layer or head swaps the data (heatmap, head view, step frame, query
        breakdown, query-key space: the ``update_*`` functions of their modules), another
        query token moves a line or an outline, a what-if re-run puts the new weights in, and
        the model view only moves its frame over pixels drawn once (blitting). Tests check
        that every in-place update shows what a new figure would."""
        start = time.perf_counter()
        view = self.view.value
        self.step.layout.display = None if view == "step by step" else "none"
        layout = self._layout_key()
        if layout == self._layout:
            self._update()
        else:
            self.figure = self.draw_figure()
            self._grid_pixels = None
            self._breakdown_pixels = (None, None)
            self.figure.set_dpi(DPI)
            self._layout = layout
        if view == "model view":
            self.image.value = self._render_model_view()
        elif view == "query breakdown":
            self.image.value = self._render_breakdown()
        else:
            self.image.value = render_png(self.figure)
        self.redraw_ms = (time.perf_counter() - start) * 1e3
        self.status.value = f"<small>{VIEWS[view]} · drawn in {self.redraw_ms:.0f} ms</small>"

    def _layout_key(self) -> tuple[Any, ...]:
        """What fixes the figure's layout. Controls outside it only change the data drawn."""
        view, trace = self.view.value, id(self.trace)
        if view == "heatmap":
            # The heatmap's layout is its tokens: another head, another query token (a line
            # moves) and what-if re-runs (other weights, colour scale, title, masked cells)
            # only change what is drawn in it...
            annotated = len(self.tokens) <= ANNOTATE_MAX_TOKENS
            # ...unless the weights are written in the cells: then every head and re-run anew
            cells = (self.layer.value, self.head.value, trace) if annotated else ()
            # the title's lines (what-if settings make it longer) fix the room above the map
            lines = self.heatmap_title(self.layer.value, self.head.value).count("\n")
            # padding (a masked token) greys its labels: a new figure
            padding = self.trace.real_tokens(self.batch).tobytes()
            return (view, tuple(self.tokens), bool(self.snapshots), lines, padding, *cells)
        if view == "model view":
            return (view, trace)
        if view == "query breakdown":  # the same figure serves every head and query with the
            # same masked keys (and colour-bar arrows): see update_query_breakdown
            shape = breakdown_layout(self.trace, self.layer.value, self.head.value,
                                     self._breakdown_query(), batch=self.batch)  # fmt: skip
            return (view, tuple(self.tokens), shape)
        if view == "head view":  # the lines of one query (or all) serve every layer and head
            padding = self.trace.real_tokens(self.batch).tobytes()  # grey labels: a new figure
            return (view, tuple(self.tokens), self.query.value, padding)
        if view == "query-key space":  # the same points and lines move: update_qk_space
            return (view, tuple(self.tokens), self.trace["blocks.0.attn.mask"].tobytes())
        if view == "step by step":  # one frame serves every layer and head: update_step_frame
            mask = self.trace["blocks.0.attn.mask"].tobytes()
            return (view, tuple(self.tokens), mask, self.step.value)
        settings = (self.layer.value, self.head.value, self.query.value, self.step.value)
        return (view, trace, *settings)

    def draw_figure(self) -> Figure:
        """A new figure of the current state of the controls, at the explorer's :data:`DPI`
        (what :meth:`redraw` shows when it cannot update the figure in place; tests compare
        the two)."""
        fig = self._build()
        fig.set_dpi(DPI)
        return fig

    def _build(self) -> Figure:
        """A new figure of the current view."""
        view, layer, head = self.view.value, self.layer.value, self.head.value
        query = self.query.value
        if view == "heatmap":
            ax = Figure(figsize=(7, 6), layout="constrained").add_subplot()
            if self.snapshots:
                self._draw_snapshot(ax, layer, head)
            else:
                vmax = 1.0 if self.what_if_settings() else None  # see heatmap_title
                attention_heatmap(self.trace, layer, head, self.tokens, ax, batch=self.batch,
                                  vmax=vmax)  # fmt: skip
                ax.set_title(self.heatmap_title(layer, head))
            # the selected query's row, underlined (hidden for "all tokens")
            ax.axhline(
                0 if query is None else query,
                color=HIGHLIGHT_COLOR,
                linewidth=2,
                alpha=0.6,
                visible=query is not None,
            )  # its only line
            return figure_of(ax)
        if view == "head view":
            ax = Figure(figsize=(5, 8), layout="constrained").add_subplot()
            return head_view(
                self.trace, layer, [head], self.tokens, query=query, batch=self.batch, ax=ax
            )
        if view == "model view":
            fig = model_view(self.trace, self.tokens, batch=self.batch)
            frame = Rectangle((0, 0), 1, 1, fill=False, lw=3, color=HIGHLIGHT_COLOR)
            fig.axes[0].add_patch(frame)  # the last patch: see _highlight
            self._move_frame(frame, layer, head)
            return fig
        if view == "step by step":
            return attention_step_frame(
                self.trace, layer, head, self.step.value, self.tokens, self._params(),
                batch=self.batch,
            )  # fmt: skip
        if view == "query-key space":
            return qk_space(self.trace, layer, head, self.tokens, batch=self.batch)
        return query_breakdown(self.trace, layer, head, self._breakdown_query(), self.tokens,
                               batch=self.batch, annotate=self._breakdown_numbers())  # fmt: skip

    def _breakdown_numbers(self) -> bool | None:
        """Whether the query breakdown writes its numbers in the cells: as it decides for up
        to 16 tokens (ANNOTATE_MAX_TOKENS, as the heatmap); beyond, not. At the explorer's
        72 dpi they would be about 5 pixels tall, unreadable, and drawing a hundred texts
        takes most of the redraw time."""
        return None if len(self.tokens) <= ANNOTATE_MAX_TOKENS else False

    def _breakdown_query(self) -> int:
        """The query token of the query breakdown: the selected one, or the first when "all
        tokens" is selected."""
        return 0 if self.query.value is None else self.query.value

    def _update(self) -> None:
        """Put the data of the selected layer, head, query (and re-run) into the figure
        already drawn."""
        layer, head = self.layer.value, self.head.value
        if self.view.value == "model view":
            self._move_frame(self._highlight(), layer, head)
            return
        if self.view.value == "head view":
            update_head_view(self.figure, self.trace, layer, [head], self.tokens,
                             query=self.query.value, batch=self.batch)  # fmt: skip
            return
        if self.view.value == "query-key space":
            update_qk_space(self.figure, self.trace, layer, head, self.tokens, batch=self.batch)
            return
        if self.view.value == "step by step":
            update_step_frame(self.figure, self.trace, layer, head, self.step.value,
                              self._params(), batch=self.batch)  # fmt: skip
            return
        if self.view.value == "query breakdown":
            update_query_breakdown(self.figure, self.trace, layer, head, self._breakdown_query(),
                                   self.tokens, batch=self.batch,
                                   annotate=self._breakdown_numbers())  # fmt: skip
            return
        ax = self.figure.axes[0]
        query = self.query.value
        line = ax.lines[0]  # the selected query's underline
        line.set_visible(query is not None)
        line.set_ydata([query or 0, query or 0])
        if self.snapshots:
            self._draw_snapshot(ax, layer, head)
            return
        weights, mask = head_pattern(self.trace, layer, head, self.batch)
        image = ax.images[0]
        drawn = image.get_array()
        assert drawn is not None
        if not np.array_equal(np.ma.getmaskarray(drawn), ~mask):  # another token masked
            remove_hatches(ax)
            hatch_masked(ax, mask)
        image.set_data(np.ma.masked_array(weights, mask=~mask))
        top = 1.0 if self.what_if_settings() else weight_limit(weights, mask)
        image.set_clim(0.0, top)  # as _draw scales
        ax.set_title(self.heatmap_title(layer, head))

    def what_if_settings(self) -> list[str]:
        """The what-if settings in force, in words (``["temperature 0.5", "no 1/√d"]``);
        empty for the model as it is (and always without a model)."""
        if self.model is None:
            return []
        settings = []
        if not np.isclose(self.temperature.value, 1.0):
            settings.append(f"temperature {self.temperature.value:.2g}")
        if not self.scale.value:
            settings.append("no 1/√d")
        if self.masked.value:
            settings.append("masked " + " ".join(self.tokens[i] for i in self.masked.value))
        if self.ablated.value:
            settings.append("ablated " + " ".join(f"L{l} H{h}" for l, h in self.ablated.value))
        return settings

    def heatmap_title(self, layer: int, head: int) -> str:
        """The heatmap's title: which head, and which what-if settings made its weights.

        While a setting is active the colour scale is fixed at 0 .. 1 (not the head's own
        maximum), so sharpening (temperature < 1, no scaling) and flattening can be seen.
        """
        settings = self.what_if_settings()
        if not settings:
            return f"Layer {layer}, head {head}: attention weights"
        return textwrap.fill(f"Layer {layer}, head {head} · " + ", ".join(settings), TITLE_CHARS)

    def _render_model_view(self) -> bytes:
        """The model view changes only by its highlight frame: draw the grid once, keep its
        pixels, and from then on paste them back and draw the frame on top ("blitting")."""
        canvas = agg_canvas(self.figure)
        frame = self._highlight()
        if self._grid_pixels is None:
            frame.set_visible(False)
            render_png(self.figure)
            self._grid_pixels = canvas.copy_from_bbox(self.figure.bbox)
            frame.set_visible(True)
        canvas.restore_region(self._grid_pixels)
        self.figure.draw_artist(frame)
        return png_bytes(canvas)

    def _render_breakdown(self) -> bytes:
        """Draw the query breakdown, the parts that stay from head to head only once.

        Why: with the same query token, another head (or a what-if re-run) changes only the
        images, their colour bars, outlines and the title, while the key labels, column
        titles and axis labels stay; drawing those texts is a third of the drawing. So the
        figure is drawn once without what changes, those pixels are kept, and each redraw
        pastes them back and draws the changing artists on top in the order a full drawing
        would (a test checks the pixels are identical)."""
        canvas = agg_canvas(self.figure)
        state = (self._layout, self._breakdown_query())
        changing = breakdown_artists(self.figure)
        background, drawn_for = self._breakdown_pixels
        if drawn_for != state:
            if drawn_for is None:  # a new figure: its first drawing lays it out
                render_png(self.figure)
            for artist in changing:
                artist.set_visible(False)
            canvas.draw()
            background = canvas.copy_from_bbox(self.figure.bbox)
            self._breakdown_pixels = (background, state)
            for artist in changing:
                artist.set_visible(True)
        canvas.restore_region(background)
        for artist in changing:
            self.figure.draw_artist(artist)
        return png_bytes(canvas)

    def _move_frame(self, frame: Rectangle, layer: int, head: int) -> None:
        """Frame the selected head in the model view (one image per head, layer by layer)."""
        n_heads = self.trace.config.n_heads
        grid = frame.axes  # the model view's axes, holding one image per head
        assert grid is not None, "the highlight is added to the model view when it is drawn"
        images = grid.images
        left, right, bottom, top = images[layer * n_heads + head].get_extent()
        frame.set_bounds(left, min(bottom, top), right - left, abs(top - bottom))

    def _highlight(self) -> Rectangle:
        """The frame around the selected head in the model view (its last patch)."""
        frame = self.figure.axes[0].patches[-1]
        assert isinstance(frame, Rectangle)
        return frame

    def _draw_snapshot(self, ax: Axes, layer: int, head: int) -> None:
        """The selected head as recorded at the selected training snapshot."""
        step, recorded = self.snapshots[self.snapshot.value]
        weights = recorded[layer, head]  # (S, S)
        title = f"Layer {layer}, head {head} at training step {step}"
        if ax.images:
            ax.images[0].set_data(weights)
            ax.set_title(title)
            return
        image = ax.imshow(weights, cmap=weights_cmap(), vmin=0, vmax=1)
        figure_of(ax).colorbar(image, ax=ax, shrink=0.8).set_label("attention weight")
        ax.set_title(title)
        ax.set_xlabel("key (attended to)")
        ax.set_ylabel("query (attending)")

    # -------------------------------------------------------------- the model
    def _params(self) -> dict[str, np.ndarray] | None:
        return None if self.model is None else self.model.params

    def _tokenize(self, text: str) -> tuple[np.ndarray, list[str]]:
        batch = self.tokenizer([text])
        return batch.input_ids, list(batch.tokens[0])

    def _rerun(self) -> None:
        """Run the model again with the what-if settings, then redraw."""
        assert self.model is not None
        mask = np.ones(self.token_ids.shape, dtype=bool)
        for position in self.masked.value:
            mask[0, position] = False
        # One BLAS thread: the matrices of one sentence are small, and on a busy machine (a
        # laptop in class, a shared server) BLAS threads waiting for each other can make a
        # 10 ms forward pass take seconds.
        with threadpool_limits(limits=1, user_api="blas"):
            _, self.trace = self.model.run_with_trace(self.token_ids, mask, **self._interventions())
        self.redraw()

    def _interventions(self) -> dict[str, Any]:
        """Keyword arguments of ``run_with_trace`` for the scaling, temperature and ablation."""
        return what_if_arguments(
            self.trace.config.n_layers,
            self.trace.config.n_heads,
            self.trace.config.d_head,
            scale=self.scale.value,
            temperature=self.temperature.value,
            ablated=self.ablated.value,
        )

    # ------------------------------------------------------------------ display
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def breakdown_artists(fig: Figure) -> list[Artist]:
    """What changes in a query breakdown from head to head (same query), in drawing order:
    in each panel the image, hatching, outline, the "masked" texts, tick marks and frame by
    z-order, as matplotlib draws them; every colour bar; the title."""
    changing: list[Artist] = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            changing.append(ax)
            continue
        parts = [(a.get_zorder(), a) for a in (*ax.images, *ax.patches, *ax.texts)]
        # the frame and the tick marks touch the image's edge: drawn after it, as matplotlib
        # draws them (the axis at its z-order, then the spines)
        for axis in (ax.xaxis, ax.yaxis):
            ticks = axis.get_major_ticks(len(axis.get_majorticklocs()))
            parts += [(axis.get_zorder(), t.tick1line) for t in ticks]
            parts += [(axis.get_zorder(), t.tick2line) for t in ticks]
        parts += [(spine.get_zorder(), spine) for spine in ax.spines.values()]
        changing += [artist for _, artist in sorted(parts, key=lambda part: part[0])]
    changing.append(fig._suptitle)  # type: ignore[attr-defined]
    return changing


def what_if_arguments(
    n_layers: int,
    n_heads: int,
    d_head: int,
    *,
    scale: bool = True,
    temperature: float = 1.0,
    ablated: Sequence[tuple[int, int]] = (),
) -> dict[str, Any]:
    """The interventions behind the what-if controls, as ``run_with_trace`` arguments.

    * No scaling: the scores are ``q·k`` instead of ``q·k / sqrt(d_head)``, so every score
      is multiplied by ``sqrt(d_head)`` before the softmax.
    * Temperature ``T``: the softmax sees ``scores / T`` (T < 1 sharpens, T > 1 flattens).
    * Ablated heads get a head-mask gate of 0 (their output z is zeroed before W_O).
    """
    factor = (1.0 if scale else float(np.sqrt(d_head))) / temperature
    arguments: dict[str, Any] = {}
    if factor != 1.0:
        rescale: Callable[[np.ndarray], np.ndarray] = lambda scores: scores * factor  # noqa: E731
        arguments["patch"] = {f"blocks.{l}.attn.scores": rescale for l in range(n_layers)}
    if ablated:
        head_mask = np.ones((n_layers, n_heads))
        for l, h in ablated:
            head_mask[l, h] = 0.0
        arguments["head_mask"] = head_mask
    return arguments


def explore(
    trace: Trace | None = None, tokens: Sequence[str] | None = None, **options: Any
) -> Explorer:
    """Open the attention explorer (see :class:`Explorer` for every option).

    >>> explore(trace, tokens)                                     # doctest: +SKIP
    >>> explore(model=model, tokenizer=tokenizer, text="The cat sat.")  # doctest: +SKIP
    """
    return Explorer(trace, tokens, **options)
