"""Explore attention interactively: an ipywidgets application around the figures of :mod:`viz`.

``viz.explore(trace, tokens)`` shows one figure at a time and a row of controls: which layer and
head, which view (heatmap, head view, model view, step by step, query breakdown, query-key
space), which query token to focus, which step of the attention computation to show. Given a
model, the what-if controls re-run the model and redraw: switch the 1/sqrt(d_head) scaling
off, change the softmax temperature, mask tokens, ablate heads; the heatmap then shows the
model as it is and the what-if side by side, on one colour scale. Given a tokenizer too, a
text box runs the model on any text. Given attention snapshots recorded during training, a
play control animates heads forming.

Everything is standard ipywidgets 8 (no custom front-end): the figure is drawn by matplotlib's
Agg renderer into PNG bytes shown by a ``widgets.Image``, so it works in JupyterLab, Notebook 7,
VS Code and Colab alike. The callbacks are plain methods, so tests (and curious students) can
drive the explorer from Python: set ``explorer.layer.value = 2`` and look at
``explorer.figure``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import html
import math
import textwrap
import time
from collections.abc import Iterator, Sequence
from numbers import Real
from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from threadpoolctl import ThreadpoolController

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.inputs import as_mask, as_token_ids
from minitransformer.trace import Trace
from minitransformer.training import AttentionSnapshots
from viz.checks import (
    check_batch,
    check_index,
)
from viz.head_view import head_view, max_labelled_rows, query_labels, update_head_view
from viz.heatmap import (
    attention_heatmap,
    draw_weights,
    hatch_masked,
    head_weights,
    remove_hatches,
)
from viz.matrix import SUPTITLE, figure_text, set_figure_texts
from viz.model_view import model_view
from viz.png import encode_png
from viz.qk_space import qk_space, update_qk_space
from viz.query import (
    ALL_KEYS_MAX,
    breakdown_layout,
    key_label_choices,
    query_breakdown,
    update_query_breakdown,
)
from viz.steps import (
    attention_step_frame,
    step_panels,
    update_step_frame,
)
from viz.style import (
    ANNOTATE_MAX_TOKENS,
    HIGHLIGHT_COLOR,
    LITERAL,
    figure_of,
    grey_padding_labels,
    plural,
    token_labels,
)

#: Size of the figure on the page: CSS pixels per inch of the figure (a figure 7 inches wide
#: is shown 504 pixels wide).
DPI = 72
#: The PNG is drawn with this many pixels per CSS pixel, so it stays sharp on high-DPI screens
#: (a browser showing a PNG of the displayed size on a 2x screen scales it up, blurring small
#: text); 1 draws about a third faster, at the displayed size.
PIXEL_RATIO = 2
#: The what-if heatmap's title wraps after this many characters (the settings can make it long).
TITLE_CHARS = 50
#: The value of the query control's "all tokens" option. (Not None: ipywidgets reads a value of
#: None as "nothing selected" and would show a blank control.)
ALL_TOKENS = "all"
#: The smallest softmax temperature T of the what-if. The softmax sees scores / T: with a
#: smaller T, float32 scores of a few hundred would overflow to inf and the weights become NaN.
MIN_TEMPERATURE = 1e-3
#: The query-key space needs at least this many unmasked tokens (a plane through fewer
#: points is not defined).
MIN_QK_TOKENS = 2


@functools.cache
def thread_pools() -> ThreadpoolController:
    """The thread pools of the libraries loaded (BLAS among them), looked up once: looking
    them up costs about a millisecond, each re-run of a what-if would pay it."""
    return ThreadpoolController()


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


def lay_out(fig: Figure) -> None:
    """Lay ``fig`` out (constrained layout) as its first drawing would, without drawing it,
    and keep that layout (as :func:`render_png` does): a new figure drawn over kept pixels is
    then drawn once, not twice (a third of a second at 32 tokens). A first drawing runs the
    layout engine, then draws; this runs the engine only (``draw_without_rendering`` would
    also walk every artist, 30 ms of a new head view at 32 tokens)."""
    agg_canvas(fig)  # the layout measures texts with the renderer that will draw them
    engine = fig.get_layout_engine()
    if fig.axes and engine is not None:
        engine.execute(fig)
    fig.set_layout_engine("none")


def png_bytes(canvas: FigureCanvasAgg) -> bytes:
    """The canvas's pixels as PNG (:func:`viz.png.encode_png`: a third of Pillow's time)."""
    return encode_png(np.asarray(canvas.buffer_rgba()))


def literal_html(text: str) -> str:
    """``text`` shown as itself in an HTML widget: ``<b>`` escaped, and ``$x$`` kept out of
    the notebook's math typesetting (MathJax skips elements of these classes)."""
    return f'<span class="tex2jax_ignore mathjax_ignore">{html.escape(text)}</span>'


class Explorer:
    """The attention explorer: controls, the current figure, and the callbacks that redraw it.

    Parameters
    ----------
    trace : Trace, optional
        What to show. With ``model``, the what-if controls re-run the model on the trace's own
        inputs (``trace.token_ids``, ``trace.padding_mask``, ``trace.token_type_ids``).
    tokens : sequence of str, optional
        Token strings (length S) for the labels; default positions 0 .. S-1.
    model : Encoder, optional
        Enables the what-if controls, which re-run this model.
    token_ids : int array of shape (S,) or (B, S), or BatchEncoding, optional
        With ``model`` and no trace: the input to run (a batch is run as a batch; ``batch``
        picks the sequence shown).
    mask : bool or 0/1 array of the shape of ``token_ids``, optional
        Its padding mask (1 = real token), as in ``model.run_with_trace``.
    tokenizer : WordPieceTokenizer, optional
        With ``model``: adds a text box; pressing Enter runs the model on the new text.
    text : str, optional
        The first text to run (with ``model`` and ``tokenizer``).
    snapshots : AttentionSnapshots, optional
        Attention recorded during training by
        :class:`~minitransformer.training.AttentionSnapshots` (its ``steps`` and ``weights``
        of shape (n_snapshots, n_layers, n_heads, S, S)) on the input of ``trace``; adds a
        play control that animates the selected head forming (in the heatmap view).
    batch : int
        Which sequence of a batch to show.
    pixel_ratio : int
        PNG pixels per pixel shown (see :data:`PIXEL_RATIO`).

    Attributes
    ----------
    trace : Trace
        The trace currently shown (re-made by the what-if controls).
    base_trace : Trace
        The model as it is on the current input (what the what-ifs are compared with).
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
        mask: Any = None,
        tokenizer: Any = None,
        text: str | None = None,
        snapshots: AttentionSnapshots | None = None,
        batch: int = 0,
        pixel_ratio: int = PIXEL_RATIO,
    ):
        if trace is not None and not isinstance(trace, Trace):
            raise TypeError(f"trace must be a minitransformer Trace, got {type(trace).__name__}")
        if model is not None and not isinstance(model, Encoder):
            raise TypeError(f"model must be a minitransformer Encoder, got {type(model).__name__}")
        if tokenizer is not None and model is None:
            raise ValueError("a tokenizer needs a model to run: pass model=... as well")
        if text is not None and tokenizer is None:
            raise ValueError("text=... needs tokenizer=... (and model=...) to become token ids")
        if model is None and (token_ids is not None or mask is not None):
            raise ValueError("token_ids=... and mask=... are the model's input: pass model=...")
        if model is not None and snapshots is not None:
            raise ValueError(
                "snapshots replay weights recorded during training, the what-if controls re-run "
                "a model: pass snapshots=... or model=..., not both"
            )
        if isinstance(pixel_ratio, bool) or pixel_ratio not in (1, 2, 3, 4):
            raise ValueError(f"pixel_ratio must be 1, 2, 3 or 4, got {pixel_ratio!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.pixel_ratio = pixel_ratio
        if model is not None:
            trace, tokens = self._first_run(trace, tokens, token_ids, mask, text)
        if trace is None:
            raise ValueError(
                "pass a trace, or model=... with token_ids=... (or tokenizer=... and text=...)"
            )
        self.batch = check_batch(trace, batch, "blocks.0.attn.weights")
        self.base_trace = trace
        self.trace = trace
        self.tokens = token_labels(tokens, trace["blocks.0.attn.weights"].shape[-1])
        self.snapshots: list[tuple[int, np.ndarray]] = []  # (step, (L, H, S, S) weights)
        if snapshots is not None:
            self.snapshots = checked_snapshots(snapshots, len(self.tokens))
        self.figure: Figure = Figure()
        self.redraw_ms = 0.0
        self._holding = False  # True while several controls are set at once: no redraws
        # each view's last figure and its layout: a view shown again updates its figure
        self._figures: dict[str, tuple[tuple[Any, ...], Figure]] = {}
        # each view's last picture and what it showed (see redraw): shown again as it is
        self._pictures: dict[str, tuple[tuple[Any, ...], bytes]] = {}
        self.views: dict[str, View] = {cls.label: cls(self) for cls in VIEW_CLASSES}
        self._build_controls(text)
        self.redraw()

    def _first_run(
        self, trace: Trace | None, tokens: Any, token_ids: Any, mask: Any, text: str | None
    ) -> tuple[Trace, Any]:
        """The trace of the model as it is, and the tokens: from ``text``, from ``token_ids``,
        or the given trace (checked to come from this model, unpatched)."""
        assert self.model is not None
        if text is not None:
            if trace is not None or token_ids is not None:
                raise ValueError("pass text=... or a trace / token_ids=..., not both")
            encoding = self._tokenize(text)
            return self._run(encoding), encoding.tokens[0]
        if trace is None:
            if token_ids is None:
                raise ValueError(
                    "with a model, pass a trace, token_ids=... or tokenizer=... and text=..."
                )
            return self._run(token_ids, mask), tokens
        if trace.config != self.model.config:
            raise ValueError(
                f"the trace was recorded by a model with another config: trace.config is "
                f"{trace.config}, model.config is {self.model.config}"
            )
        if trace.patched or (trace.head_mask is not None and not np.all(trace.head_mask == 1)):
            raise ValueError(
                "the trace was recorded with patch= or head_mask=, which the what-if re-runs "
                "would drop: pass the trace of the model as it is (and ablate heads with the "
                "what-if control)"
            )
        if trace.token_ids is None:
            raise ValueError("the trace did not keep its token ids: pass token_ids=... instead")
        # token_ids or mask given with the trace must be its own (the re-runs use the trace's)
        ids = trace.token_ids if token_ids is None else as_token_ids(token_ids, trace.config)
        kept = np.ones(ids.shape, bool) if trace.padding_mask is None else trace.padding_mask
        if not np.array_equal(ids, trace.token_ids) or (
            mask is not None and not np.array_equal(as_mask(mask, ids.shape), kept)
        ):
            raise ValueError(
                "token_ids / mask differ from the trace's own inputs (trace.token_ids, "
                "trace.padding_mask): pass the trace alone, or token_ids and mask alone"
            )
        return trace, tokens

    # ------------------------------------------------------------------ controls
    def _build_controls(self, text: str | None) -> None:
        cfg = self.trace.config
        self.view = widgets.ToggleButtons(options=list(VIEWS), value="heatmap", description="view")
        self.layer = widgets.Dropdown(options=list(range(cfg.n_layers)), description="layer")
        self.head = widgets.Dropdown(options=list(range(cfg.n_heads)), description="head")
        self.query = widgets.Dropdown(
            options=self._query_options(), value=ALL_TOKENS, description="query"
        )
        n_steps = len(step_panels(self.trace, 0, 0, self.params(), batch=self.batch))
        self.step = widgets.IntSlider(value=1, min=1, max=n_steps, description="step")
        self.image = widgets.Image(format="png")
        self.status = widgets.HTML()
        for control in (self.view, self.layer, self.head, self.query, self.step):
            control.observe(self._on_change, names="value")
        rows: list[widgets.Widget] = []
        if self.tokenizer is not None:
            # the plain text, not the tokens: the tokenizer adds [CLS] and [SEP] itself
            shown = text if text is not None else plain_text(self.tokens, self.tokenizer)
            self.text = widgets.Text(value=shown, description="text", continuous_update=False)
            self.text.observe(self._on_text, names="value")
            rows.append(self.text)
        rows += [self.view, widgets.HBox([self.layer, self.head, self.query]), self.step]
        rows += self._what_if_controls()
        rows += self._snapshot_controls()
        rows += [self.image, self.status]
        self.widget = widgets.VBox(rows)

    def _real_positions(self) -> list[int]:
        """Positions of the real tokens of the sequence shown (padding is never a choice)."""
        return [int(i) for i in np.flatnonzero(self.base_trace.real_tokens(self.batch))]

    def _query_options(self) -> list[tuple[str, Any]]:
        return [("all tokens", ALL_TOKENS)] + self._token_options()

    def _token_options(self) -> list[tuple[str, int]]:
        # option labels are drawn as plain text by ipywidgets: a token "<b>" shows as itself
        return [(f"{i}: {self.tokens[i]}", i) for i in self._real_positions()]

    @property
    def selected_query(self) -> int | None:
        """The query token selected, or None for "all tokens"."""
        value = self.query.value
        return None if value in (ALL_TOKENS, None) else int(value)

    def _what_if_controls(self) -> list[widgets.Widget]:
        """Controls that re-run the model: only with a model."""
        scaled = self.trace.config.scale_scores
        self.scale = widgets.Checkbox(value=scaled, description="divide scores by sqrt(d_head)")
        self.temperature = widgets.FloatLogSlider(
            value=1.0, base=10, min=-1, max=1, step=0.05, description="temperature"
        )
        self.masked = widgets.SelectMultiple(
            options=self._token_options(), description="mask tokens", rows=4
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
                widgets.HTML(
                    "<i>What-if controls need the model: explore(trace, tokens, model=model)</i>"
                )
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
        self.snapshot_row = widgets.HBox([self.play, self.snapshot])
        if not self.snapshots:
            return []
        widgets.jslink((self.play, "value"), (self.snapshot, "value"))
        self.snapshot.observe(self._on_change, names="value")
        return [self.snapshot_row]

    @contextlib.contextmanager
    def _changing_controls(self) -> Iterator[None]:
        """Set several controls at once: their callbacks do nothing until the block ends (the
        caller then redraws once). Without this, each control would redraw with the others
        not yet set: a query index of the old text on the new text's trace."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    # ----------------------------------------------------------------- callbacks
    def _on_change(self, change: dict[str, Any]) -> None:
        if not self._holding:
            self.redraw()

    def _on_text(self, change: dict[str, Any]) -> None:
        """Run the model on the new text, then show it with the query and masked tokens of the
        old text cleared (their positions mean other tokens now)."""
        try:
            encoding = self._tokenize(change["new"])
            base = self._run(encoding)
        except ValueError as error:  # e.g. a text longer than the model reads: say so, keep all
            self.status.value = f"<b>Not run:</b> {literal_html(str(error))}"
            return
        self.base_trace, self.batch = base, 0
        self.tokens = token_labels(encoding.tokens[0], base["blocks.0.attn.weights"].shape[-1])
        with self._changing_controls():
            self.query.options = self._query_options()
            self.query.value = ALL_TOKENS
            self.masked.options = self._token_options()
            self.masked.value = ()
        self._rerun()

    def _on_what_if(self, change: dict[str, Any]) -> None:
        if not self._holding:
            self._rerun()

    # ------------------------------------------------------------------ drawing
    @property
    def current_view(self) -> View:
        """The view selected by the view switch."""
        return self.views[self.view.value]

    def redraw(self) -> None:
        """Show the current view: update the figure in place when only its data changed,
        otherwise draw a new figure; then render it as a PNG for the image widget.

        Why: building a figure (axes, ticks, colour bars) and laying it out costs more than
        drawing it, often several times more, and a control should answer within about 100 ms
        at 32 tokens. So each view keeps its figure while its layout (:meth:`View.layout_key`)
        stays: another layer or head swaps the data (heatmap, head view, step frame, query
        breakdown, query-key space: the ``update_*`` functions of their modules), another
        query token moves a line or an outline, a what-if re-run puts the new weights in, and
        the model view only moves its frame over pixels drawn once (blitting). Tests check
        that every in-place update shows what a new figure would. Each view keeps its figure
        while another view is shown: switching back is an update too, and when nothing it
        shows changed meanwhile (:meth:`shown`), its last picture is shown again undrawn."""
        start = time.perf_counter()
        view = self.current_view
        # the step and snapshot controls act on one view only: shown with it
        self.step.layout.display = None if isinstance(view, StepView) else "none"
        self.snapshot_row.layout.display = None if isinstance(view, HeatmapView) else "none"
        note = view.note()
        # a note instead of the figure: a new one for every other note
        layout = (
            (view.label, "note", note) if note is not None else (view.label, *view.layout_key())
        )
        kept = self._figures.get(view.label)
        shown = (layout, *self.shown())
        picture = self._pictures.get(view.label)
        if kept is not None and picture is not None and same_items(picture[0], shown):
            self.figure = kept[1]  # nothing changed since the view was last drawn
            self.image.value = picture[1]
        else:
            if kept is None or kept[0] != layout:
                self.figure = self.draw_figure()
                self._figures[view.label] = (layout, self.figure)
            else:
                self.figure = kept[1]
                if note is None:
                    view.update(self.figure)
            png = render_png(self.figure) if note is not None else view.render(self.figure)
            self._pictures[view.label] = (shown, png)
            self.image.value = png
        # shown at DPI pixels per inch, drawn with pixel_ratio times as many
        self.image.width = str(round(self.figure.get_figwidth() * DPI))
        self.redraw_ms = (time.perf_counter() - start) * 1e3
        self.status.value = self._status()

    def shown(self) -> tuple[Any, ...]:
        """What the picture of a view depends on besides its layout: the value of every
        control, the sequence shown, and the traces (the same objects, compared with ``is``:
        a re-run makes a new trace)."""
        controls = (self.layer, self.head, self.query, self.step, self.snapshot, self.scale,
                    self.temperature, self.masked, self.ablated)  # fmt: skip
        values = tuple(control.value for control in controls)
        return (values, self.batch, tuple(self.tokens), self.trace, self.base_trace)

    def _status(self) -> str:
        """The line under the figure: what the view shows, the what-if settings in force (every
        view shows the re-run model; only the heatmap shows the model as it is beside it)."""
        line = f"{VIEWS[self.view.value]} · drawn in {self.redraw_ms:.0f} ms"
        settings = self.what_if_settings()
        if settings:
            line += " · <b>what if:</b> " + literal_html(", ".join(settings))
        return f"<small>{line}</small>"

    def draw_figure(self) -> Figure:
        """A new figure of the current state of the controls, at the explorer's resolution
        (what :meth:`redraw` shows when it cannot update the figure in place; tests compare
        the two)."""
        view = self.current_view
        note = view.note()
        fig = note_figure(note) if note is not None else view.build()
        fig.set_dpi(DPI * self.pixel_ratio)
        return fig

    def what_if_settings(self) -> list[str]:
        """The what-if settings in force, in words (``["temperature 0.5", "no 1/√d"]``);
        empty for the model as it is (and always without a model)."""
        if self.model is None:
            return []
        settings = []
        if not np.isclose(self.temperature.value, 1.0):
            settings.append(f"temperature {self.temperature.value:.2g}")
        if self.scale.value != self.model.config.scale_scores:
            settings.append("with 1/√d" if self.scale.value else "no 1/√d")
        if self.masked.value:
            settings.append("masked " + " ".join(self.tokens[i] for i in self.masked.value))
        if self.ablated.value:
            settings.append("ablated " + " ".join(f"L{l} H{h}" for l, h in self.ablated.value))
        return settings

    # -------------------------------------------------------------- the model
    def params(self) -> dict[str, np.ndarray] | None:
        """The model's parameters, or None without a model."""
        return None if self.model is None else self.model.params

    def _tokenize(self, text: str) -> Any:
        """The tokenizer's BatchEncoding of one text (ids, mask, token types and tokens)."""
        return self.tokenizer([text])

    def _run(
        self, token_ids: Any, mask: Any = None, *, model: Encoder | None = None, **options: Any
    ) -> Trace:
        """Run ``model`` (default: the explorer's model) with ``run_with_trace`` options and
        return the trace."""
        model = self.model if model is None else model
        assert model is not None
        # One BLAS thread: the matrices of one sentence are small, and on a busy machine (a
        # laptop in class, a shared server) BLAS threads waiting for each other can make a
        # 10 ms forward pass take seconds.
        with thread_pools().limit(limits=1, user_api="blas"):
            _, trace = model.run_with_trace(token_ids, mask, **options)
        return trace

    def _rerun(self) -> None:
        """Run the model again with the what-if settings (or show the model as it is when
        none is set), then redraw."""
        assert self.model is not None
        base = self.base_trace
        assert base.token_ids is not None, "checked when the explorer was made"
        if not self.what_if_settings():
            self.trace = base
            self.redraw()
            return
        mask = np.ones(base.token_ids.shape, dtype=bool)
        if base.padding_mask is not None:
            mask &= base.padding_mask  # padding stays padding
        mask[self.batch, list(self.masked.value)] = False
        types = base.token_type_ids if self.model.config.type_vocab_size else None
        arguments = what_if_arguments(
            self.model.config, temperature=self.temperature.value, ablated=self.ablated.value
        )
        model = what_if_model(self.model, scale=self.scale.value)
        self.trace = self._run(base.token_ids, mask, token_type_ids=types, model=model, **arguments)
        self.redraw()

    # ------------------------------------------------------------------ display
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


# ---------------------------------------------------------------------------------- the views


class View:
    """One view of the explorer: how to build its figure, how to update the figure in place,
    and what fixes its layout (while :meth:`layout_key` stays the same, :meth:`update` is
    enough). Each view reads the controls and the trace from its :class:`Explorer`."""

    label = ""  #: the view switch's label
    description = ""  #: what the view shows (the status line)

    def __init__(self, explorer: Explorer):
        self.explorer = explorer
        #: (what they were drawn for, starting with the figure; the pixels) for the views that
        #: redraw over kept pixels (:meth:`render_over_kept_pixels`)
        self.pixels: tuple[Any, Any] = (None, None)
        #: ((what they were drawn for, the labels' colours, weights and frames); the kept
        #: pixels with the labels)
        self.labelled_pixels: tuple[Any, Any] = (None, None)
        #: where those labels are, in display pixels (they stay in place while the pixels do)
        self.label_extents: list[Bbox] = []

    def layout_key(self) -> tuple[Any, ...]:
        """What fixes the figure's layout; controls outside it only change the data drawn."""
        raise NotImplementedError

    def build(self) -> Figure:
        """A new figure of the view for the current controls."""
        raise NotImplementedError

    def update(self, fig: Figure) -> None:
        """Put the data of the current controls into ``fig``, made by :meth:`build` with the
        same layout key."""
        raise NotImplementedError

    def note(self) -> str | None:
        """What the view says instead of a figure when it has nothing to draw; None: draw."""
        return None

    def render(self, fig: Figure) -> bytes:
        """The figure as PNG bytes."""
        return render_png(fig)

    def lay_out(self, fig: Figure) -> None:
        """Lay out a new figure before it is drawn over kept pixels (:func:`lay_out`)."""
        lay_out(fig)

    def render_over_kept_pixels(
        self, fig: Figure, state: Any, changing: list[Artist], labels: Sequence[Text] = ()
    ) -> bytes:
        """Draw ``fig`` as PNG bytes, the parts that stay from one update to the next once.

        Why: in a figure updated in place, most of the drawing is what does not change (tick
        labels, axis labels, column titles): drawing text is most of matplotlib's time. So the
        figure is drawn once without the ``changing`` artists (in drawing order), those pixels
        are kept for ``state`` (the figure and what else fixes them), and each redraw pastes
        them back and draws only the changing artists on top, in the order a full drawing
        would (tests check that the pixels are identical). ``labels``: tick labels whose
        colours, weights or frames change; they are transparent in the kept pixels (not
        hidden: the axis label keeps its place beside them), drawn over them once, then only
        those whose look changed (:func:`redraw_labels`), and those pixels are kept too.
        (They touch no changing artist.)"""
        canvas = agg_canvas(fig)
        drawn_for, background = self.pixels
        if drawn_for != state:
            if drawn_for is None or drawn_for[0] is not fig:  # a new figure: lay it out
                self.lay_out(fig)
            # texts are left out by making them transparent, not hidden: a hidden title has
            # no size, and matplotlib would move it to make room for it above the tick labels
            # (their frames, which do not take their alpha, are hidden)
            texts = [*labels, *(artist for artist in changing if isinstance(artist, Text))]
            hidden = [artist for artist in changing if not isinstance(artist, Text)]
            hidden += [frame for text in texts if (frame := text.get_bbox_patch()) is not None]
            visible = [artist.get_visible() for artist in hidden]
            alphas = [text.get_alpha() for text in texts]
            for artist in hidden:
                artist.set_visible(False)
            for text in texts:
                text.set_alpha(0.0)
            canvas.draw()
            background = canvas.copy_from_bbox(fig.bbox)
            self.pixels = (state, background)
            for artist, shown in zip(hidden, visible, strict=True):
                artist.set_visible(shown)
            for text, alpha in zip(texts, alphas, strict=True):
                text.set_alpha(alpha)
            self.labelled_pixels = (None, None)
        if labels:
            looks = tuple(
                (str(label.get_color()), label.get_fontweight(), label.get_bbox_patch() is not None)
                for label in labels
            )
            drawn_for, labelled = self.labelled_pixels  # (state, looks), pixels
            if drawn_for is None or drawn_for[0] != state:
                canvas.restore_region(background)
                for label in labels:
                    fig.draw_artist(label)
                renderer = canvas.get_renderer()
                self.label_extents = [drawn_extent(label, renderer) for label in labels]
            elif drawn_for[1] != looks:  # some labels changed their look: only those redrawn
                canvas.restore_region(labelled)
                changed = [
                    i for i, (before, now) in enumerate(zip(drawn_for[1], looks, strict=True))
                    if before != now
                ]  # fmt: skip
                renderer = canvas.get_renderer()
                boxes = []  # where each changed label was and is (bold is wider)
                for i in changed:
                    now = drawn_extent(labels[i], renderer)
                    boxes.append(Bbox.union([self.label_extents[i], now]))
                    self.label_extents[i] = now
                redraw_labels(canvas, background, labels, self.label_extents, boxes)
            if drawn_for != (state, looks):
                self.labelled_pixels = ((state, looks), canvas.copy_from_bbox(fig.bbox))
            background = self.labelled_pixels[1]
        canvas.restore_region(background)
        for artist in changing:
            fig.draw_artist(artist)  # (an artist update() hid draws nothing)
        return png_bytes(canvas)


class HeatmapView(View):
    """The selected head's weights; with what-if settings, the model as it is (left) and the
    what-if (right) on one colour scale; with training snapshots, the head at a snapshot."""

    label = "heatmap"
    description = "one head's weights, queries down and keys across"

    def layout_key(self) -> tuple[Any, ...]:
        e = self.explorer
        # The heatmap's layout is its tokens and its panels (one, or the model as it is and the
        # what-if): another head, another query token (a line moves) and what-if re-runs
        # (other weights, colour scale, title, masked cells) only change what is drawn in it...
        annotated = len(e.tokens) <= ANNOTATE_MAX_TOKENS and not e.snapshots
        # ...unless the weights are written in the cells: then every head and re-run anew
        cells = (e.layer.value, e.head.value, id(e.trace)) if annotated else ()
        # the title's lines (what-if settings make it longer) fix the room above the map
        lines = self.title(e.layer.value, e.head.value).count("\n")
        # the panels, and the padding (grey labels; masked tokens' labels are recoloured)
        panels = 1 if e.snapshots else len(self.traces())
        padding = e.base_trace.real_tokens(e.batch).tobytes()
        return (tuple(e.tokens), bool(e.snapshots), panels, padding, lines, *cells)

    def build(self) -> Figure:
        e = self.explorer
        layer, head, query = e.layer.value, e.head.value, e.selected_query
        if e.snapshots:
            ax = Figure(figsize=(7, 6), layout="constrained").add_subplot()
            self.draw_snapshot(ax, layer, head)
            axes = [ax]
        else:
            traces = self.traces()
            fig = Figure(figsize=(12.5, 6) if len(traces) == 2 else (7, 6), layout="constrained")
            axes = list(fig.subplots(1, len(traces), squeeze=False)[0])
            top = self.top(layer, head)
            for ax, trace in zip(axes, traces, strict=True):
                attention_heatmap(
                    trace, layer, head, e.tokens, ax, batch=e.batch, vmax=top, colorbar=False
                )
            bar = fig.colorbar(axes[-1].images[0], ax=axes, shrink=0.8)
            bar.set_label("attention weight" + (" (one scale for both)" if len(axes) == 2 else ""))
            self.set_titles(axes, layer, head)
        for ax in axes:  # the selected query's row, underlined (hidden for "all tokens")
            ax.axhline(
                0 if query is None else query,
                color=HIGHLIGHT_COLOR,
                linewidth=2,
                alpha=0.6,
                visible=query is not None,
            )
        return ticks_under_images(figure_of(axes[0]))

    def update(self, fig: Figure) -> None:
        """Each panel's underline, weights, masked cells, colour scale and title, as
        :meth:`build` would draw them."""
        e = self.explorer
        layer, head, query = e.layer.value, e.head.value, e.selected_query
        axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        for ax in axes:
            line = ax.lines[0]  # the selected query's underline
            line.set_visible(query is not None)
            line.set_ydata([query or 0, query or 0])
        if e.snapshots:
            self.draw_snapshot(axes[0], layer, head)
            return
        top = self.top(layer, head)
        for ax, trace in zip(axes, self.traces(), strict=True):
            weights, mask = head_weights(trace, layer, head, e.batch)
            image = ax.images[0]
            drawn = image.get_array()
            assert drawn is not None
            if not np.array_equal(np.ma.getmaskarray(drawn), ~mask):  # another token masked
                remove_hatches(ax)
                hatch_masked(ax, mask)
            image.set_data(np.ma.masked_array(weights, mask=~mask))
            image.set_clim(0.0, max(top, 1e-12))  # as draw_weights
        if len(axes) == 2:  # the what-if's masked tokens have grey labels, as padding
            grey_masked_labels(axes[0], axes[1], e.trace.real_tokens(e.batch))
        self.set_titles(axes, layer, head)

    def render(self, fig: Figure) -> bytes:
        """Draw the figure; while the weights are not written in the cells, the tick labels and
        axis labels (most of the drawing time) only once for each figure."""
        e = self.explorer
        if len(e.tokens) <= ANNOTATE_MAX_TOKENS and not e.snapshots:
            return render_png(fig)  # numbers in the cells: every update is a new figure
        base, shown = (t.real_tokens(e.batch) for t in (e.base_trace, e.trace))
        labels: list[Text] = []
        if not e.snapshots and len(self.traces()) == 2 and not np.array_equal(base, shown):
            # the what-if masks tokens: its panel's labels are drawn over the kept pixels when
            # their colours change (tens of ms), not the whole figure anew (hundreds of ms)
            what_if = fig.axes[1]
            labels = [*what_if.get_xticklabels(), *what_if.get_yticklabels()]
        # the model-as-it-is panel's label colours (padding grey) are in the kept pixels
        state = (fig, base.tobytes(), bool(labels))
        return self.render_over_kept_pixels(fig, state, heatmap_artists(fig), labels)

    def traces(self) -> tuple[Trace, ...]:
        """The traces shown: the model as it is and the what-if re-run side by side while a
        what-if setting is in force, otherwise the one trace."""
        e = self.explorer
        return (e.base_trace, e.trace) if e.what_if_settings() else (e.trace,)

    def title(self, layer: int, head: int) -> str:
        """The title of the heatmap of the trace shown: which head, and which what-if settings
        made its weights (then drawn beside the model as it is, on one colour scale)."""
        settings = self.explorer.what_if_settings()
        if not settings or self.explorer.snapshots:
            return f"Layer {layer}, head {head}: attention weights"
        return textwrap.fill("what if: " + ", ".join(settings), TITLE_CHARS)

    def set_titles(self, axes: Sequence[Axes], layer: int, head: int) -> None:
        """The heatmaps' titles (drawn literally: the what-if settings name tokens); a
        comparison is titled above both."""
        axes[-1].set_title(self.title(layer, head), **LITERAL)
        if len(axes) == 2:
            axes[0].set_title("the model as it is")
            fig, suptitle = figure_of(axes[0]), f"Layer {layer}, head {head}: attention weights"
            if any(text.get_gid() == SUPTITLE for text in fig.texts):
                set_figure_texts(fig, suptitle)  # in place, where the layout put it
            else:
                fig.suptitle(suptitle, gid=SUPTITLE)

    def top(self, layer: int, head: int) -> float:
        """The top of the colour scale: the largest weight of a real query of the traces shown
        (one scale for a comparison; padding queries do not set it)."""
        tops = [0.0]
        for trace in self.traces():
            weights, _ = head_weights(trace, layer, head, self.explorer.batch)
            real = trace.real_tokens(self.explorer.batch)
            if real.any():
                tops.append(float(weights[real].max()))
        return max(tops)

    def draw_snapshot(self, ax: Axes, layer: int, head: int) -> None:
        """The selected head as recorded at the selected training snapshot, labelled with the
        tokens, masked cells as in the trace (the snapshots' probe input)."""
        e = self.explorer
        step, recorded = e.snapshots[e.snapshot.value]
        weights = recorded[layer, head]  # (S, S)
        title = f"Layer {layer}, head {head} at training step {step}"
        _, mask = head_weights(e.trace, layer, head, e.batch)
        if ax.images:
            ax.images[0].set_data(np.ma.masked_array(weights, mask=~mask))
            ax.set_title(title)
            return
        # one fixed scale, 0 to 1, so that the frames of the animation can be compared
        image = draw_weights(ax, weights, mask, e.tokens, vmax=1.0, annotate=False)
        figure_of(ax).colorbar(image, ax=ax, shrink=0.8).set_label("attention weight")
        ax.set_title(title)
        ax.set_xlabel("key (attended to)")
        ax.set_ylabel("query (attending)")


class HeadView(View):
    """BertViz's head view of the selected head."""

    label = "head view"
    description = "lines from each query to the keys it reads, opacity = weight"

    #: The figure's size in inches: up to max_labelled_rows(8.0) tokens, each is labelled.
    size = (5.0, 8.0)

    def layout_key(self) -> tuple[Any, ...]:
        e = self.explorer  # the lines of one query (or all) serve every layer and head
        real = e.trace.real_tokens(e.batch).tobytes()  # grey labels: a new figure
        query: int | str | None = e.selected_query
        if query is not None and len(e.tokens) <= max_labelled_rows(self.size[1]):
            query = "one query"  # every token labelled: another query only moves the frame
        return (tuple(e.tokens), query, real)

    def build(self) -> Figure:
        ax = Figure(figsize=self.size, layout="constrained").add_subplot()
        arguments, options = self.arguments()
        return head_view(*arguments, **options, ax=ax)

    def update(self, fig: Figure) -> None:
        arguments, options = self.arguments()
        update_head_view(fig, *arguments, **options)

    def render(self, fig: Figure) -> bytes:
        """Draw the figure, the token columns and headers only once for each figure (most of
        its drawing time): another layer or head changes only the lines, legend and title,
        and another query the two query labels whose highlight moved."""
        labels = query_labels(fig.axes[0])
        return self.render_over_kept_pixels(fig, (fig,), head_view_artists(fig), labels)

    def arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """What :func:`head_view` draws: trace, layer, the head, tokens, and options."""
        e = self.explorer
        arguments = (e.trace, e.layer.value, [e.head.value], e.tokens)
        return arguments, {"query": e.selected_query, "batch": e.batch}


class ModelView(View):
    """Every head of every layer, the selected one framed. The grid is drawn once; from then
    on only the frame moves, drawn over the grid's pixels ("blitting")."""

    label = "model view"
    description = "every head of every layer at a glance"

    def layout_key(self) -> tuple[Any, ...]:
        return (id(self.explorer.trace),)

    def build(self) -> Figure:
        e = self.explorer
        fig = model_view(e.trace, e.tokens, batch=e.batch)
        frame = Rectangle((0, 0), 1, 1, fill=False, lw=3, color=HIGHLIGHT_COLOR)
        fig.axes[0].add_patch(frame)  # the last patch: see frame_of
        self.move_frame(frame)
        return fig

    def update(self, fig: Figure) -> None:
        self.move_frame(self.frame_of(fig))

    def render(self, fig: Figure) -> bytes:
        return self.render_over_kept_pixels(fig, (fig,), [self.frame_of(fig)])

    def move_frame(self, frame: Rectangle) -> None:
        """Frame the selected head (one image per head, layer by layer)."""
        e = self.explorer
        grid = frame.axes  # the model view's axes, holding one image per head
        assert grid is not None, "the frame is added to the model view when it is drawn"
        image = grid.images[e.layer.value * e.trace.config.n_heads + e.head.value]
        left, right, bottom, top = image.get_extent()
        frame.set_bounds(left, min(bottom, top), right - left, abs(top - bottom))

    @staticmethod
    def frame_of(fig: Figure) -> Rectangle:
        """The frame around the selected head (the last patch of the grid)."""
        frame = fig.axes[0].patches[-1]
        assert isinstance(frame, Rectangle)
        return frame


class StepView(View):
    """One step of the selected head's attention, as a slide."""

    label = "step by step"
    description = "one stage of the computation: X -> Q, K, V -> scores -> softmax -> z"

    def layout_key(self) -> tuple[Any, ...]:
        e = self.explorer  # one frame serves every layer and head: update_step_frame
        return (tuple(e.tokens), e.trace["blocks.0.attn.mask"].tobytes(), e.step.value)

    def build(self) -> Figure:
        e = self.explorer
        return attention_step_frame(
            e.trace, e.layer.value, e.head.value, e.step.value, e.tokens, e.params(), batch=e.batch
        )

    def update(self, fig: Figure) -> None:
        e = self.explorer
        update_step_frame(
            fig, e.trace, e.layer.value, e.head.value, e.step.value, e.params(), batch=e.batch
        )


class QueryBreakdownView(View):
    """One query's dot products, softmax and weighted values. With the same query, another
    head (or a what-if re-run) changes only the images, their colour bars, outlines and the
    title; the rest is drawn once and its pixels kept (see :meth:`render`)."""

    label = "query breakdown"
    description = "one query's dot products, softmax and weighted sum of values"

    def layout_key(self) -> tuple[Any, ...]:
        e = self.explorer  # the same figure serves every head and query with the same masked
        # keys (and colour-bar arrows): see update_query_breakdown
        shape = breakdown_layout(e.trace, e.layer.value, e.head.value, self.query(), batch=e.batch)
        return (tuple(e.tokens), shape)

    def build(self) -> Figure:
        arguments, options = self.arguments()
        return ticks_under_images(query_breakdown(*arguments, **options))

    def update(self, fig: Figure) -> None:
        arguments, options = self.arguments()
        update_query_breakdown(fig, *arguments, **options)

    def arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """What :func:`query_breakdown` draws: trace, layer, head, query, tokens, and options."""
        e = self.explorer
        arguments = (e.trace, e.layer.value, e.head.value, self.query(), e.tokens)
        return arguments, {"batch": e.batch, "annotate": self.numbers()}

    def note(self) -> str | None:
        e = self.explorer
        real = e.trace.real_tokens(e.batch)
        if not real.any():
            why = "every token is masked, so no query is left to break down"
        elif not real[self.query()]:
            query = self.query()
            why = (
                f"query {query} ({e.tokens[query]}) is masked: it reads no key and no key "
                f"reads it. Pick another query, or"
            )
        else:
            return None
        return f"Layer {e.layer.value}, head {e.head.value}: {why}. Unmask tokens to see it."

    def render(self, fig: Figure) -> bytes:
        """Draw the figure, the parts that stay from head to head and query to query (same
        keys) only once: drawing the key labels, column titles and axis labels is a third of
        the drawing. Another query highlights another key label: only the two labels that
        change are drawn again."""
        key_labels = fig.axes[0].get_yticklabels()
        keys = tuple(label.get_text() for label in key_labels)
        return self.render_over_kept_pixels(fig, (fig, keys), breakdown_artists(fig), key_labels)

    def lay_out(self, fig: Figure) -> None:
        """Lay the figure out with room for the widest key label: with keys left out (long
        inputs), each head and query shows its own keys, and the figure is updated in place
        (a new figure at 128 tokens took half a second)."""
        e = self.explorer
        ax = fig.axes[0]
        shown = [label.get_text() for label in ax.get_yticklabels()]
        if len(e.tokens) <= ALL_KEYS_MAX:  # every key shown: the labels never change
            lay_out(fig)
            return
        choices = key_label_choices(e.tokens, len(e.tokens), len(shown) - 1)  # (and others)
        bold = ax.get_yticklabels()[0].get_fontproperties().copy()
        bold.set_weight("bold")  # the query's own key is written in bold
        renderer = agg_canvas(fig).get_renderer()
        widest = max(
            choices, key=lambda s: renderer.get_text_width_height_descent(s, bold, False)[0]
        )
        weights = [label.get_fontweight() for label in ax.get_yticklabels()]
        ax.set_yticks(np.arange(len(shown)), [widest, *shown[1:]], **LITERAL)
        ax.get_yticklabels()[0].set_fontweight("bold")
        lay_out(fig)
        ax.set_yticks(np.arange(len(shown)), shown, **LITERAL)
        ax.get_yticklabels()[0].set_fontweight(weights[0])

    def query(self) -> int:
        """The query token: the selected one, or the first token left unmasked when "all
        tokens" is selected."""
        e = self.explorer
        real = np.flatnonzero(e.trace.real_tokens(e.batch))
        query = e.selected_query
        return query if query is not None else int(real[0]) if real.size else 0

    def numbers(self) -> bool | None:
        """Whether the numbers are written in the cells: as the figure decides for up to 16
        tokens (ANNOTATE_MAX_TOKENS, as the heatmap); beyond, not. At the explorer's 72 dpi
        they would be about 5 pixels tall, unreadable, and drawing a hundred texts takes most
        of the redraw time."""
        return None if len(self.explorer.tokens) <= ANNOTATE_MAX_TOKENS else False


class QueryKeyView(View):
    """AttentionViz's query-key space of the selected head."""

    label = "query-key space"
    description = "queries and keys of one head in one plane (AttentionViz)"

    def layout_key(self) -> tuple[Any, ...]:
        e = self.explorer  # the same points and lines move: update_qk_space
        return (tuple(e.tokens), e.trace["blocks.0.attn.mask"].tobytes())

    def build(self) -> Figure:
        e = self.explorer
        return qk_space(e.trace, e.layer.value, e.head.value, e.tokens, batch=e.batch)

    def update(self, fig: Figure) -> None:
        e = self.explorer
        update_qk_space(fig, e.trace, e.layer.value, e.head.value, e.tokens, batch=e.batch)

    def note(self) -> str | None:
        e = self.explorer
        left = int(np.count_nonzero(e.trace.real_tokens(e.batch)))
        if left >= MIN_QK_TOKENS:
            return None
        why = (
            "every token is masked, so no query and no key is left to show"
            if left == 0
            else f"only {plural(left, 'token')} left unmasked, and the query-key space needs at "
            f"least {MIN_QK_TOKENS}"
        )
        return f"Layer {e.layer.value}, head {e.head.value}: {why}. Unmask tokens to see it."


#: The views, in the order of the view switch.
VIEW_CLASSES: tuple[type[View], ...] = (
    HeatmapView,
    HeadView,
    ModelView,
    StepView,
    QueryBreakdownView,
    QueryKeyView,
)
#: The views' labels -> what each draws.
VIEWS = {view.label: view.description for view in VIEW_CLASSES}


def plain_text(tokens: Sequence[str], tokenizer: Any) -> str:
    """The text of word pieces, without the special tokens: ``["[CLS]", "play", "##ing",
    "[SEP]"]`` -> ``"playing"`` (what the text box shows for an input given as token ids)."""
    words: list[str] = []
    for token in tokens:
        if token in tokenizer.special_tokens:
            continue
        if token.startswith("##") and words:
            words[-1] += token[2:]
        else:
            words.append(token)
    return " ".join(words)


def note_figure(message: str) -> Figure:
    """A figure that only says ``message`` (when a view has nothing to draw)."""
    fig = Figure(figsize=(7, 2.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(
        0.5,
        0.5,
        textwrap.fill(message, 60),
        ha="center",
        va="center",
        fontsize=11,
        transform=ax.transAxes,
        parse_math=False,
    )
    return fig


def checked_snapshots(snapshots: object, n_tokens: int) -> list[tuple[int, np.ndarray]]:
    """The snapshots as ``(step, weights of shape (L, H, S, S))`` pairs, checked to be an
    :class:`AttentionSnapshots` recorded on an input of ``n_tokens`` tokens."""
    if not isinstance(snapshots, AttentionSnapshots):
        raise TypeError(f"snapshots must be an AttentionSnapshots, got {type(snapshots).__name__}")
    if not snapshots.steps:
        raise ValueError("snapshots holds no snapshot yet: train with it as a callback first")
    weights = snapshots.weights
    if weights.shape[-1] != n_tokens:
        raise ValueError(
            f"snapshots were recorded on {weights.shape[-1]} tokens but the trace has "
            f"{n_tokens}: pass the trace of the snapshots' probe input"
        )
    return list(zip(snapshots.steps, weights, strict=True))


def breakdown_artists(fig: Figure) -> list[Artist]:
    """What changes in a query breakdown from head to head and query to query, in drawing
    order: in each panel the image, hatching, outline, the "masked" texts and frame by
    z-order, as matplotlib draws them, and the query panel's title (it names the query);
    every colour bar; the title. (The key labels are redrawn apart, see
    :meth:`QueryBreakdownView.render`.)"""
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]  # 7 columns, q, z
    query_panel = panels[7]
    changing: list[Artist] = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            changing.append(ax)
            continue
        parts = [(a.get_zorder(), a) for a in (*ax.images, *ax.patches, *ax.texts)]
        if ax is query_panel:
            parts.append((ax.title.get_zorder(), ax.title))
        changing += by_zorder(parts + edge_parts(ax))
    changing.append(figure_text(fig, SUPTITLE))
    return changing


def head_view_artists(fig: Figure) -> list[Artist]:
    """What changes in a head view from head to head (same query), in drawing order: the
    lines of each head, the dots marking labelled rows at their ends (drawn over them), the
    title and the legend. (The lines end short of the token labels, so the labels, drawn
    once, are not drawn over them.)"""
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None, "head_view draws a legend of the heads"
    parts: list[tuple[float, Artist]] = [
        (c.get_zorder(), c) for c in ax.collections if isinstance(c, LineCollection)
    ]
    parts += [(line.get_zorder(), line) for line in ax.lines]  # added after the lines
    return by_zorder([*parts, (ax.title.get_zorder(), ax.title), (legend.get_zorder(), legend)])


def grey_masked_labels(base: Axes, what_if: Axes, real: np.ndarray) -> None:
    """Colour the what-if heatmap's tick labels as :func:`~viz.heatmap.attention_heatmap`
    would: grey (:data:`~viz.style.PADDING_COLOR`) where ``real`` (bool, (S,)) is False, the
    colour of the model-as-it-is panel's label (padding grey, else the default) elsewhere."""
    for axis, base_axis in ((what_if.xaxis, base.xaxis), (what_if.yaxis, base.yaxis)):
        labels = axis.get_ticklabels()
        for label, as_is in zip(labels, base_axis.get_ticklabels(), strict=True):
            label.set_color(as_is.get_color())  # a token unmasked again gets its colour back
        grey_padding_labels(labels, [int(p) for p in axis.get_ticklocs()], real)


def drawn_extent(label: Text, renderer: RendererBase) -> Bbox:
    """Where ``label`` draws, in display pixels: its text and the frame around it, if any
    (the frame's outline, centred on its edge, reaching out a line width at most)."""
    extent = label.get_window_extent(renderer)
    frame = label.get_bbox_patch()
    figure = label.get_figure(root=True)
    if frame is None or figure is None:
        return extent
    label.update_bbox_position_size(renderer)  # the frame is placed when the label is drawn
    outline = frame.get_linewidth() * figure.dpi / 72  # points to pixels
    return Bbox.union([extent, frame.get_window_extent(renderer).padded(outline)])


def redraw_labels(
    canvas: FigureCanvasAgg,
    background: Any,
    labels: Sequence[Text],
    extents: Sequence[Bbox],
    boxes: Sequence[Bbox],
) -> None:
    """Redraw the ``labels`` (which are at ``extents`` in display pixels) within ``boxes``
    (display pixels: where changed labels were and are) on the canvas, leaving the rest as
    it is.

    Each box, and 2 pixels more (within the canvas), is put back as in ``background`` (the
    kept pixels without any label), and every label reaching into it is drawn again, clipped
    to it, in the order of ``labels``. The pixels are those of drawing every label anew
    (tests compare them) for a few labels' drawing time: masking a token recolours 4 of 64
    labels."""
    renderer = canvas.get_renderer()
    width, height = canvas.get_width_height()
    for extent in boxes:  # display pixels, y upwards
        x0, y0 = max(math.floor(extent.x0) - 2, 0), max(math.floor(extent.y0) - 2, 0)
        x1, y1 = min(math.ceil(extent.x1) + 2, width), min(math.ceil(extent.y1) + 2, height)
        # the pixels [x0, x1) x [y0, y1), which clipping to the box below leaves drawable; a
        # region's box counts rows from the top and includes its last row and column, and
        # xy=(0, 0) puts them back in the same place
        top, bottom = height - y1, height - y0
        canvas.restore_region(background, bbox=(x0, top, x1 - 1, bottom - 1), xy=(0, 0))
        box = Bbox([[x0, y0], [x1, y1]])
        for other, other_extent in zip(labels, extents, strict=True):
            if other_extent.overlaps(box):
                clip_on, clip_box = other.get_clip_on(), other.get_clip_box()
                other.set_clip_box(box)
                other.set_clip_on(True)
                other.draw(renderer)
                other.set_clip_box(clip_box)
                other.set_clip_on(clip_on)


def same_items(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether two tuples hold the same items: equal values, and the very same traces (a
    trace is compared by identity, never by value)."""
    return len(a) == len(b) and all(
        x is y if isinstance(x, Trace) or isinstance(y, Trace) else x == y
        for x, y in zip(a, b, strict=True)
    )


def heatmap_artists(fig: Figure) -> list[Artist]:
    """What changes in the heatmap view from head to head, in drawing order: in each panel
    the image, hatching, the query's underline, the title and frame by z-order, as
    matplotlib draws them; every colour bar; the title above both panels, if any."""
    changing: list[Artist] = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            changing.append(ax)
            continue
        parts = [(a.get_zorder(), a) for a in (*ax.images, *ax.patches, *ax.lines, ax.title)]
        changing += by_zorder(parts + edge_parts(ax))
    changing += [text for text in fig.texts if text.get_gid() == SUPTITLE]
    return changing


def edge_parts(ax: Axes) -> list[tuple[float, Artist]]:
    """The frame of ``ax`` with its z-order: it covers the image's edge, so it is drawn after
    it, as matplotlib draws it. (The tick marks, which also touch that edge, are drawn before
    the images, see :func:`ticks_under_images`, so they stay in the kept pixels.)"""
    return [(spine.get_zorder(), spine) for spine in ax.spines.values()]


def ticks_under_images(fig: Figure) -> Figure:
    """Draw the axes' tick marks (and tick labels) before their images, not after.

    Why: a tick mark touches the image's edge, so with matplotlib's order (images, then the
    axis) every redraw of an image over kept pixels had to redraw every tick mark after it,
    256 of them in a two-panel heatmap at 32 tokens (a tenth of a redraw). Drawn first, they
    are part of the kept pixels; the image covers only their end inside the edge, which the
    frame, drawn last, covers anyway."""
    for ax in fig.axes:
        if ax.images and ax.get_label() != "<colorbar>":
            below = min(image.get_zorder() for image in ax.images) - 1
            ax.xaxis.set_zorder(below)
            ax.yaxis.set_zorder(below)
    return fig


def by_zorder(parts: list[tuple[float, Artist]]) -> list[Artist]:
    """The artists of (z-order, artist) pairs in drawing order: by z-order, equal z-orders in
    the order given (Python's sort is stable)."""
    return [artist for _, artist in sorted(parts, key=lambda part: part[0])]


def what_if_model(model: Encoder, scale: bool) -> Encoder:
    """``model`` with ``config.scale_scores = scale``: the what-if "no 1/sqrt(d_head)".

    Returns the model itself when it already does that; otherwise an Encoder with the changed
    config and the *same* ``params`` dict (no copy of the weights), so its trace records the
    scores as they are computed (``attn.scores`` = q·kᵀ) and ``trace.config.scale_scores``
    says so.
    """
    if not isinstance(scale, (bool, np.bool_)):
        raise TypeError(f"scale must be a bool, got {type(scale).__name__} {scale!r}")
    if model.config.scale_scores == bool(scale):
        return model
    twin = copy.copy(model)  # a shallow copy: a new Encoder whose params is the same dict
    twin.config = dataclasses.replace(model.config, scale_scores=bool(scale))
    return twin


def what_if_arguments(
    config: EncoderConfig,
    *,
    temperature: float = 1.0,
    ablated: Sequence[tuple[int, int]] = (),
) -> dict[str, Any]:
    """The temperature and ablation what-ifs, as ``run_with_trace`` arguments.

    * Temperature ``T``: every layer's ``attn.scores`` are patched to ``scores / T`` before
      the softmax (T < 1 sharpens, T > 1 flattens); the trace then lists them in
      ``trace.patched``.
    * Ablated heads ``(layer, head)`` get a head mask of 0 (their output z is zeroed
      before W_O).

    Raises ``TypeError``/``ValueError`` naming the argument: ``temperature`` must be a finite
    number of at least :data:`MIN_TEMPERATURE` (0 divides by zero, a negative T inverts
    attention, a tiny T overflows the scores); each ablated pair must be a layer and a head of
    ``config``.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, Real):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not (np.isfinite(temperature) and temperature >= MIN_TEMPERATURE):
        raise ValueError(
            f"temperature must be a finite number >= {MIN_TEMPERATURE:g} (the softmax sees "
            f"scores / temperature), got {temperature!r}"
        )
    head_mask = np.ones((config.n_layers, config.n_heads))
    for pair in ablated:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"ablated must hold (layer, head) pairs, got {pair!r}")
        layer = check_index(pair[0], config.n_layers, "ablated layer")
        head_mask[layer, check_index(pair[1], config.n_heads, "ablated head")] = 0.0
    arguments: dict[str, Any] = {}
    if temperature != 1.0:
        patch = {f"blocks.{l}.attn.scores": _divide_by(temperature) for l in range(config.n_layers)}
        arguments["patch"] = patch
    if ablated:
        arguments["head_mask"] = head_mask
    return arguments


def _divide_by(temperature: float) -> Any:
    """The patch function ``scores -> scores / temperature``."""
    return lambda scores: scores / temperature


def explore(
    trace: Trace | None = None, tokens: Sequence[str] | None = None, **options: Any
) -> Explorer:
    """Open the attention explorer (see :class:`Explorer` for every option).

    >>> explore(trace, tokens)                                     # doctest: +SKIP
    >>> explore(trace, tokens, model=model)       # with the what-if controls  # doctest: +SKIP
    >>> explore(model=model, tokenizer=tokenizer, text="The cat sat.")  # doctest: +SKIP
    """
    return Explorer(trace, tokens, **options)
