"""The gallery: every figure of :mod:`viz`, drawn for real models, in one folder with an index.

Two subjects:

- **MiniLM** (``all-MiniLM-L6-v2``, 6 layers x 12 heads) on one English sentence, its tokens
  from its own tokenizer (and the attention figures again for a 64-token paragraph);
- **the reverse toy model** shipped in ``minitransformer/checkpoints`` (1 layer, 1 head) on a
  held-out sequence, plus a fresh training run of the same task with
  :class:`~minitransformer.training.AttentionSnapshots` for the attention-over-training strip
  and GIF.

Then the explorer's current figure for a few control settings, and the self-contained HTML
page of :func:`viz.html_export.to_html`. Everything goes into ``--out`` (default
``gallery/``, git-ignored) with an ``index.html`` that shows each picture with its caption
(the call that drew it), so a reviewer can look at all of them at once::

    python benchmarks/gallery.py [--out gallery] [--dpi 100] [--only minilm|long|toy|explorer]

:func:`figure_builders` is the list of figures (name, caption, function) for one trace;
``benchmarks/figures.py`` times the same list.
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import viz  # noqa: E402
from minitransformer.encoder import Encoder  # noqa: E402
from minitransformer.interpret.rollout import attention_rollout  # noqa: E402
from minitransformer.interpret.stats import attention_weights, head_roles, head_statistics  # noqa: E402
from minitransformer.pretrained import load_pretrained  # noqa: E402
from minitransformer.tasks import best_head  # noqa: E402
from minitransformer.toy_models import load_toy_model  # noqa: E402
from minitransformer.trace import Trace  # noqa: E402
from minitransformer.training import AttentionSnapshots, held_out, train_task  # noqa: E402
from viz.html_export import to_html  # noqa: E402
from viz.interpret import head_statistics_figure, relevance_maps_figure  # noqa: E402
from viz.training import animate_attention, attention_over_training  # noqa: E402

SENTENCE = "The cat sat on the mat because it was tired."
#: A paragraph long enough for 128 tokens: long inputs (label thinning, size scaling).
PARAGRAPH = (
    "Attention lets every token of a sentence look at every other token and decide how much "
    "of each one to read. A transformer encoder stacks several layers of this, each with many "
    "heads, and adds a small feed-forward network after each attention step. Students learn "
    "the mechanism best by looking at real numbers: the queries, the keys, the scores, the "
    "softmax and the weighted sum of the values, for one head and then for all of them. "
    "Teachers want pictures that are quick to draw, easy to read on a slide, and honest about "
    "what the model computed, so every figure is drawn from a recorded trace of the forward "
    "pass rather than recomputed. This paragraph is long enough to fill the longest input."
)
#: The figures drawn again for a 64-token input, to check that long inputs stay readable.
LONG_INPUT_FIGURES = ("heatmap", "heads", "model_view", "head_view", "steps", "query",
                      "qk_space", "residual_norms", "relevance")  # fmt: skip


@dataclass
class Subject:
    """What the figures are drawn for: a model, its input, the trace and the token labels."""

    name: str
    title: str
    model: Encoder
    token_ids: np.ndarray  # (1, S)
    trace: Trace
    tokens: list[str]
    layer: int  # the head the one-head figures show
    head: int
    query: int  # the query token of the query-level figures


@dataclass
class Shown:
    """One picture in the gallery: its file name (in the subject's folder) and caption."""

    file: str
    caption: str


#: A figure of the gallery: (file stem, caption, function of the subject returning a Figure).
#: The caption may name ``{layer}``, ``{head}`` and ``{query}`` (filled in per subject).
Builder = tuple[str, str, Callable[[Subject], Figure]]


def minilm_subject(
    sentence: str = SENTENCE, max_length: int | None = None, name: str = "minilm"
) -> Subject:
    """MiniLM on ``sentence`` (cut to ``max_length`` tokens when given)."""
    model, tokenizer = load_pretrained("all-MiniLM-L6-v2")
    batch = tokenizer([sentence], max_length=max_length)
    _, trace = model.run_with_trace(
        batch.input_ids, batch.attention_mask, token_type_ids=batch.token_type_ids
    )
    tokens = batch.tokens[0]
    query = tokens.index("it") if "it" in tokens else 1
    shown = sentence if max_length is None else f"the first {len(tokens)} tokens of a paragraph"
    return Subject(name, f"MiniLM (all-MiniLM-L6-v2) on “{shown}”", model,
                   batch.input_ids, trace, tokens, layer=2, head=0, query=query)  # fmt: skip


def toy_subject(task: str = "reverse") -> Subject:
    """The shipped toy model of ``task`` on one held-out sequence, showing its best head."""
    model, _, task_obj = load_toy_model(task)
    batch = held_out(task_obj, 1)
    _, trace = model.run_with_trace(batch.token_ids, batch.mask)
    best = best_head(trace, batch.attention_target)
    tokens = [str(i) for i in batch.token_ids[0]]
    title = f"shipped toy model '{task}' on held-out input {' '.join(tokens)}"
    return Subject(task, title, model, batch.token_ids, trace, tokens,
                   layer=best.layer, head=best.head, query=0)  # fmt: skip


def figure_builders() -> list[Builder]:
    """Every figure of :mod:`viz` that is drawn from one trace, with its caption."""
    return [
        ("heatmap", "attention_heatmap(trace, {layer}, {head}, tokens)",
         lambda s: viz.attention_heatmap(s.trace, s.layer, s.head, s.tokens)),
        ("heads", "attention_heads(trace, {layer}, tokens=tokens): every head of one layer",
         lambda s: viz.attention_heads(s.trace, s.layer, tokens=s.tokens)),
        ("model_view", "model_view(trace, tokens, highlight=[({layer}, {head})])",
         lambda s: viz.model_view(s.trace, s.tokens, highlight=[(s.layer, s.head)])),
        ("head_view", "head_view(trace, {layer}, [0, 1, 2], tokens): heads in colours",
         lambda s: viz.head_view(s.trace, s.layer, range(min(3, s.trace.config.n_heads)),
                                 s.tokens)),
        ("head_view_query", "head_view(trace, {layer}, [{head}], tokens, query={query}): one query",
         lambda s: viz.head_view(s.trace, s.layer, [s.head], s.tokens, query=s.query)),
        ("steps", "attention_steps(trace, {layer}, {head}, tokens, params): every step",
         lambda s: viz.attention_steps(s.trace, s.layer, s.head, s.tokens, s.model.params)),
        ("query", "query_breakdown(trace, {layer}, {head}, {query}, tokens)",
         lambda s: viz.query_breakdown(s.trace, s.layer, s.head, s.query, s.tokens)),
        ("multihead", "multihead_anatomy(trace, {layer}, {query}, tokens, params)",
         lambda s: viz.multihead_anatomy(s.trace, s.layer, s.query, s.tokens, s.model.params)),
        ("positional", "positional_encoding(model): the model's position table",
         lambda s: viz.positional_encoding(s.model)),
        ("architecture", "architecture_diagram(trace): live shapes",
         lambda s: viz.architecture_diagram(s.trace)),
        ("residual_norms", "residual_norms(trace, tokens)",
         lambda s: viz.residual_norms(s.trace, s.tokens)),
        ("contributions", "contribution_sizes(trace): attention vs FFN per layer",
         lambda s: viz.contribution_sizes(s.trace)),
        ("qk_space", "qk_space(trace, {layer}, {head}, tokens): queries and keys in one plane",
         lambda s: viz.qk_space(s.trace, s.layer, s.head, s.tokens)),
        ("head_statistics", "head_statistics_figure(head_statistics(...), head_roles(...))",
         _head_statistics),
        ("relevance", "relevance_maps_figure: last layer's mean attention vs attention rollout",
         _relevance_maps),
    ]  # fmt: skip


def _head_statistics(s: Subject) -> Figure:
    special = [i for i, token in enumerate(s.tokens) if token in ("[CLS]", "[SEP]")]
    stats = head_statistics(attention_weights(s.trace), s.token_ids, special_positions=special)
    return head_statistics_figure(stats, head_roles(stats))


def _relevance_maps(s: Subject) -> Figure:
    weights = attention_weights(s.trace)  # (L, B, H, S, S)
    maps = {
        "last layer, mean of heads": weights[-1, 0].mean(axis=0),
        "attention rollout": attention_rollout(weights)[-1, 0],
    }
    return relevance_maps_figure(maps, s.tokens)


def _caption(template: str, s: Subject) -> str:
    """A builder's caption with the subject's layer, head and query filled in."""
    return template.format(layer=s.layer, head=s.head, query=s.query)


def save(fig: Figure, folder: Path, stem: str, dpi: int) -> str:
    """Save ``fig`` as ``folder/stem.png``; returns the file name."""
    fig.savefig(folder / f"{stem}.png", dpi=dpi)
    return f"{stem}.png"


def render_long_input(subject: Subject, folder: Path, dpi: int) -> list[Shown]:
    """The figures of :data:`LONG_INPUT_FIGURES` for a long input."""
    shown = []
    for stem, caption, build in figure_builders():
        if stem in LONG_INPUT_FIGURES:
            shown.append(Shown(save(build(subject), folder, stem, dpi), _caption(caption, subject)))
    return shown


def render_subject(subject: Subject, folder: Path, dpi: int) -> list[Shown]:
    """Every figure of :func:`figure_builders`, the slide frames and the HTML page."""
    shown = []
    for stem, caption, build in figure_builders():
        start = time.perf_counter()
        shown.append(Shown(save(build(subject), folder, stem, dpi), _caption(caption, subject)))
        print(f"  {subject.name}/{stem}.png  {time.perf_counter() - start:5.2f} s", flush=True)
    frames = viz.attention_step_frames(
        subject.trace, subject.layer, subject.head, subject.tokens, subject.model.params
    )
    for number, frame in enumerate(frames, start=1):
        caption = f"attention_step_frames(...)[{number - 1}]: slide {number} of {len(frames)}"
        shown.append(Shown(save(frame, folder, f"step_frame_{number:02d}", dpi), caption))
    page = to_html(subject.trace, subject.tokens, title=subject.title)
    (folder / "attention.html").write_text(page, encoding="utf-8")
    shown.append(Shown("attention.html", "to_html(trace, tokens): the interactive HTML page"))
    return shown


def render_training(task: str, folder: Path, dpi: int) -> list[Shown]:
    """Train ``task`` afresh with snapshots every 20 steps: the strip and the GIF."""
    probe = held_out(task, 1)
    snapshots = AttentionSnapshots(probe.token_ids, every=20, mask=probe.mask)
    model, _, _ = train_task(task, seed=0, progress=False, callbacks=[snapshots])
    _, trace = model.run_with_trace(probe.token_ids, probe.mask)
    best = best_head(trace, probe.attention_target)
    tokens = [str(i) for i in probe.token_ids[0]]
    target = probe.attention_target[0]
    last = snapshots.steps[-1]
    steps = [s for s in (0, 20, 40, 60, 80, 100, 200, last) if s in snapshots.steps]
    strip = attention_over_training(snapshots, best.layer, best.head, tokens, steps, target=target)
    gif = animate_attention(snapshots, best.layer, best.head, folder / "training.gif",
                            tokens=tokens, target=target, fps=4, dpi=dpi)  # fmt: skip
    return [
        Shown(save(strip, folder, "training_strip", dpi),
              f"attention_over_training(snapshots, {best.layer}, {best.head}, tokens, steps, "
              "target=T): a fresh training run"),
        Shown(gif.name, f"animate_attention(snapshots, {best.layer}, {best.head}, "
                        f"'{gif.name}', fps=4): every {snapshots.every} steps"),
    ]  # fmt: skip


#: The explorer's control settings shown: (file stem, caption, {control: value}).
EXPLORER_SETTINGS: list[tuple[str, str, dict[str, Any]]] = [
    ("explorer_default", "explore(trace, tokens, model=..., token_ids=...): first view", {}),
    ("explorer_head_view", "view='head view', layer=4, head=3, query=3",
     {"view": "head view", "layer": 4, "head": 3, "query": 3}),
    ("explorer_model_view", "view='model view', layer=1, head=5",
     {"view": "model view", "layer": 1, "head": 5}),
    ("explorer_steps", "view='step by step', step=4", {"view": "step by step", "step": 4}),
    ("explorer_query", "view='query breakdown', query=2", {"view": "query breakdown", "query": 2}),
    ("explorer_temperature", "what if: temperature 0.2 (heatmap)", {"temperature": 0.2}),
    ("explorer_no_scaling", "what if: no 1/sqrt(d_head) scaling (heatmap, layer 0)",
     {"scale": False, "layer": 0}),
]  # fmt: skip


def render_explorer(subject: Subject, folder: Path, dpi: int) -> list[Shown]:
    """The explorer's current figure after each setting of :data:`EXPLORER_SETTINGS`."""
    shown = []
    for stem, caption, controls in EXPLORER_SETTINGS:
        explorer = viz.explore(subject.trace, subject.tokens, model=subject.model,
                               token_ids=subject.token_ids)  # fmt: skip
        for control, value in controls.items():
            getattr(explorer, control).value = value
        shown.append(Shown(save(explorer.figure, folder, stem, dpi), caption))
    return shown


def write_index(out: Path, sections: list[tuple[str, str, list[Shown]]]) -> Path:
    """``out/index.html``: one section per subject, each picture with its caption."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>viz gallery</title>",
        "<style>body{font-family:sans-serif;margin:1em 2em} figure{display:inline-block;"
        "vertical-align:top;margin:0 1em 2em 0;max-width:48%} img{max-width:100%;"
        "border:1px solid #ddd} figcaption{font-family:monospace;font-size:90%}</style>",
        "</head><body><h1>viz gallery</h1>",
        f"<p>Rendered {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        "<code>benchmarks/gallery.py</code>.</p>",
    ]
    for folder, title, shown in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for item in shown:
            src = f"{folder}/{item.file}"
            caption = html.escape(item.caption)
            if item.file.endswith(".html"):
                parts.append(f"<p><a href='{src}'>{caption}</a></p>")
            else:
                parts.append(
                    f"<figure><a href='{src}'><img src='{src}' loading='lazy'></a>"
                    f"<figcaption><b>{html.escape(item.file)}</b>: {caption}</figcaption></figure>"
                )
    parts.append("</body></html>")
    index = out / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gallery"))
    parser.add_argument("--dpi", type=int, default=100)
    parser.add_argument("--only", choices=["minilm", "long", "toy", "explorer"], default=None)
    args = parser.parse_args(argv)
    sections = []
    subjects: dict[str, Callable[[], Subject]] = {
        "minilm": minilm_subject,
        "long": lambda: minilm_subject(PARAGRAPH, max_length=64, name="minilm_64_tokens"),
        "toy": toy_subject,
    }
    minilm = None
    for key, make in subjects.items():
        if args.only not in (None, key):
            continue
        subject = make()
        minilm = subject if key == "minilm" else minilm
        folder = args.out / subject.name
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{subject.title}: {len(subject.tokens)} tokens", flush=True)
        if key == "long":
            shown = render_long_input(subject, folder, args.dpi)
        else:
            shown = render_subject(subject, folder, args.dpi)
        if key == "toy":
            shown += render_training(subject.name, folder, args.dpi)
        sections.append((subject.name, subject.title, shown))
    if args.only in (None, "explorer"):
        subject = minilm or minilm_subject()
        folder = args.out / "explorer"
        folder.mkdir(parents=True, exist_ok=True)
        sections.append(("explorer", "The explorer (viz.explore) on MiniLM, a few settings",
                         render_explorer(subject, folder, args.dpi)))  # fmt: skip
    index = write_index(args.out, sections)
    print(f"wrote {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
