"""The gallery: every figure of :mod:`viz`, drawn for real models, in one folder with an index.

Two subjects:

- **MiniLM** (``all-MiniLM-L6-v2``, 6 layers x 12 heads) on one English sentence, its tokens
  from its own tokenizer (and the attention figures again for the first 64 and 512 tokens of a
  long text, and for the padded row of a batch of two sentences);
- **the reverse toy model** shipped in ``minitransformer/checkpoints`` (1 layer, 1 head) on a
  held-out sequence, plus a fresh training run of the same task with
  :class:`~minitransformer.training.AttentionSnapshots` for the attention-over-training strip
  and GIF.

Then every figure of :mod:`viz.interpret`, drawn from :mod:`minitransformer.interpret`'s
numbers with small budgets (a few inputs, few permutations, short training):

- **interpret_toy**: a 3-layer x 4-head pointer model trained 300 steps (as in notebook 08)
  and the shipped ``sort`` model (2 x 2) for the per-head figures (statistics, similarity,
  diagnostics, pruning); the shipped ``pointer``, ``reverse`` and ``twin`` (seeds 0 and 4)
  models for the per-input figures (rollout and flow, token attributions, permutation,
  agreement of rankings); the two twin seeds; uniform vs learned attention on a few tasks;
- **interpret_minilm**: the same figures for MiniLM on a few sentences (the explained output:
  the cosine of the sentence embedding with a reference sentence's).

Then the explorer's current figure for a few control settings, and the self-contained HTML
page of :func:`viz.html_export.to_html`. Everything goes into ``--out`` (default
``gallery/``, git-ignored) with an ``index.html`` that shows each picture with its caption
(the call that drew it), so a reviewer can look at all of them at once::

    python benchmarks/gallery.py [--out gallery] [--dpi 100]
        [--only minilm|long|long512|padded|toy|interpret_toy|interpret_minilm|explorer]

:func:`figure_builders` is the list of figures (name, caption, function) for one trace;
``benchmarks/figures.py`` times the same list.
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from explanation import permutation_effect  # noqa: E402  (a sibling script, as figures.py uses gallery)
from matplotlib.figure import Figure  # noqa: E402

import viz  # noqa: E402
from minitransformer.config import EncoderConfig  # noqa: E402
from minitransformer.encoder import Encoder  # noqa: E402
from minitransformer.heads import Classifier  # noqa: E402
from minitransformer.interpret import (  # noqa: E402
    PruningCurve,
    ablation_importance,
    attention_flow,
    attention_permutation_effect,
    attention_rollout,
    attention_weights,
    class_logit,
    classical_mds,
    classification_loss,
    compare_rankings,
    diagnose,
    embedding_cosine,
    gradient_importance,
    gradient_weighted_rollout,
    gradient_x_input,
    head_distances,
    head_mask_without,
    head_names,
    head_roles,
    head_statistics,
    importance_order,
    integrated_gradients,
    occlusion,
    pruning_curve,
    punctuation_ids,
    random_order,
    twin_seeds_experiment,
    uniform_attention_experiment,
)
from minitransformer.interpret.objectives import Objective  # noqa: E402
from minitransformer.pooling import sentence_embedding  # noqa: E402
from minitransformer.pretrained import load_pretrained  # noqa: E402
from minitransformer.tasks import Pointer, Task, best_head, get_task  # noqa: E402
from minitransformer.toy_models import load_toy_model  # noqa: E402
from minitransformer.trace import Trace  # noqa: E402
from minitransformer.training import AttentionSnapshots, held_out, train, train_task  # noqa: E402
from viz.html_export import to_html  # noqa: E402
from viz.interpret import (  # noqa: E402
    diagnostics_figure,
    head_similarity_figure,
    head_statistics_figure,
    permutation_figure,
    pruning_curves_figure,
    ranking_agreement_figure,
    relevance_maps_figure,
    token_scores_figure,
    twin_seeds_figure,
    uniform_attention_figure,
)
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
#: A text long enough for 512 tokens (MiniLM's longest input).
LONG_TEXT = " ".join([PARAGRAPH] * 5)
#: The figures drawn again for a 64-token input, to check that long inputs stay readable.
LONG_INPUT_FIGURES = ("heatmap", "heads", "model_view", "model_view_lines", "head_view",
                      "steps", "query", "qk_space", "residual_norms", "relevance")  # fmt: skip
#: The figures drawn for 512 tokens (the step-by-step and query figures are left out: at 512
#: tokens they are a matter of the steps helper's span selection).
LONGEST_INPUT_FIGURES = ("heatmap", "heads", "model_view", "model_view_lines", "head_view",
                         "head_view_query", "residual_norms", "contributions")  # fmt: skip
#: The second of two sentences, padded to the first's length: the figures of batch row 1.
PADDED_PAIR = (SENTENCE, "A dog slept.")
#: The figures drawn for the padded row (those that take a batch index).
PADDED_FIGURES = ("heatmap", "heads", "model_view", "model_view_lines", "head_view",
                  "head_view_query", "steps", "query", "multihead", "residual_norms",
                  "contributions", "qk_space")  # fmt: skip


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
    batch: int = 0  # the row of the batch the figures show


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


def padded_subject() -> Subject:
    """MiniLM on :data:`PADDED_PAIR`, showing batch row 1: 6 tokens and 7 [PAD]."""
    model, tokenizer = load_pretrained("all-MiniLM-L6-v2")
    batch = tokenizer(list(PADDED_PAIR))
    _, trace = model.run_with_trace(
        batch.input_ids, batch.attention_mask, token_type_ids=batch.token_type_ids
    )
    tokens = batch.tokens[1]
    title = f"MiniLM on a padded batch, row 1: “{PADDED_PAIR[1]}” padded to {len(tokens)} tokens"
    return Subject("minilm_padded", title, model, batch.input_ids, trace, tokens,
                   layer=2, head=0, query=tokens.index("dog"), batch=1)  # fmt: skip


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
        ("heatmap", "attention_heatmap(trace, {layer}, {head}, tokens{batch})",
         lambda s: viz.attention_heatmap(s.trace, s.layer, s.head, s.tokens, batch=s.batch)),
        ("heads", "attention_heads(trace, {layer}, tokens=tokens{batch}): every head of one layer",
         lambda s: viz.attention_heads(s.trace, s.layer, tokens=s.tokens, batch=s.batch)),
        ("model_view", "model_view(trace, tokens, highlight=[({layer}, {head})]{batch})",
         lambda s: viz.model_view(s.trace, s.tokens, highlight=[(s.layer, s.head)],
                                  batch=s.batch)),
        ("model_view_lines",
         "model_view(trace, tokens, kind='lines', vmax='shared'{batch}): BertViz's lines",
         lambda s: viz.model_view(s.trace, s.tokens, kind="lines", vmax="shared",
                                  batch=s.batch)),
        ("head_view", "head_view(trace, {layer}, [0, 1, 2], tokens{batch}): heads in colours",
         lambda s: viz.head_view(s.trace, s.layer, range(min(3, s.trace.config.n_heads)),
                                 s.tokens, batch=s.batch)),
        ("head_view_query",
         "head_view(trace, {layer}, [{head}], tokens, query={query}{batch}): one query",
         lambda s: viz.head_view(s.trace, s.layer, [s.head], s.tokens, query=s.query,
                                 batch=s.batch)),
        ("steps", "attention_steps(trace, {layer}, {head}, tokens, params{batch}): every step",
         lambda s: viz.attention_steps(s.trace, s.layer, s.head, s.tokens, s.model.params,
                                       batch=s.batch)),
        ("query", "query_breakdown(trace, {layer}, {head}, {query}, tokens{batch})",
         lambda s: viz.query_breakdown(s.trace, s.layer, s.head, s.query, s.tokens,
                                       batch=s.batch)),
        ("multihead", "multihead_anatomy(trace, {layer}, {query}, tokens, params{batch})",
         lambda s: viz.multihead_anatomy(s.trace, s.layer, s.query, s.tokens, s.model.params,
                                         batch=s.batch)),
        ("positional", "positional_encoding(model): the model's position table",
         lambda s: viz.positional_encoding(s.model)),
        ("architecture", "architecture_diagram(trace): live shapes",
         lambda s: viz.architecture_diagram(s.trace)),
        ("residual_norms", "residual_norms(trace, tokens{batch})",
         lambda s: viz.residual_norms(s.trace, s.tokens, batch=s.batch)),
        ("contributions", "contribution_sizes(trace{batch}): attention vs FFN per layer",
         lambda s: viz.contribution_sizes(s.trace, batch=s.batch)),
        ("qk_space", "qk_space(trace, {layer}, {head}, tokens{batch}): queries and keys in one "
         "plane", lambda s: viz.qk_space(s.trace, s.layer, s.head, s.tokens, batch=s.batch)),
        ("head_statistics", "head_statistics_figure(head_statistics(...), head_roles(...))",
         _head_statistics),
        ("relevance", "relevance_maps_figure: last layer's mean attention vs attention rollout",
         _relevance_maps),
    ]  # fmt: skip


def _head_statistics(s: Subject) -> Figure:
    special = [i for i, token in enumerate(s.tokens) if token in ("[CLS]", "[SEP]")]
    ids = np.ravel(s.token_ids)
    marks = [int(i) for i, token in zip(ids, s.tokens, strict=True) if punctuation_ids([token])]
    stats = head_statistics(attention_weights(s.trace), s.token_ids, special_positions=special,
                            punctuation=marks)  # fmt: skip
    return head_statistics_figure(stats, head_roles(stats))


def _relevance_maps(s: Subject) -> Figure:
    weights = attention_weights(s.trace)  # (L, B, H, S, S)
    maps = {
        "last layer, mean of heads": weights[-1, 0].mean(axis=0),
        "attention rollout": attention_rollout(weights)[-1, 0],
    }
    return relevance_maps_figure(maps, s.tokens)


def _caption(template: str, s: Subject) -> str:
    """A builder's caption with the subject's layer, head, query and batch row filled in."""
    batch = f", batch={s.batch}" if s.batch else ""
    return template.format(layer=s.layer, head=s.head, query=s.query, batch=batch)


def save(fig: Figure, folder: Path, stem: str, dpi: int) -> str:
    """Save ``fig`` as ``folder/stem.png``; returns the file name."""
    fig.savefig(folder / f"{stem}.png", dpi=dpi)
    return f"{stem}.png"


def render_some(subject: Subject, folder: Path, dpi: int, stems: tuple[str, ...]) -> list[Shown]:
    """The figures of :func:`figure_builders` named in ``stems``, for a long or padded input."""
    shown = []
    for stem, caption, build in figure_builders():
        if stem in stems:
            start = time.perf_counter()
            shown.append(Shown(save(build(subject), folder, stem, dpi), _caption(caption, subject)))
            print(f"  {subject.name}/{stem}.png  {time.perf_counter() - start:5.2f} s", flush=True)
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


# ------------------------------------------------------------------ interpretability


#: Sentences MiniLM's interpretability figures average over (few: the gallery stays quick).
SENTENCES = [
    SENTENCE,
    "A man is playing a guitar on the stage.",
    "Is attention an explanation?",
    "She sold the old car and bought a bicycle, which was cheaper.",
    "The weather in Paris was cold, wet and windy yesterday.",
    "Two dogs are running through a field of grass.",
    "The committee postponed its decision until next week.",
    "Birds sing in the morning; owls call at night.",
]
#: What MiniLM's attributions explain: the cosine of SENTENCE's embedding with this one's.
REFERENCE = "A tired cat rested on a rug."
#: Removal orders drawn by the pruning figures: the importance orders and this many random ones.
N_RANDOM_ORDERS = 5


class Shelf:
    """The pictures of one gallery section, saved as they are drawn, with a timing line each."""

    def __init__(self, folder: Path, dpi: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.dpi = folder, dpi
        self.shown: list[Shown] = []
        self.start = time.perf_counter()

    def add(self, stem: str, caption: str, fig: Figure) -> None:
        self.shown.append(Shown(save(fig, self.folder, stem, self.dpi), caption))
        seconds = time.perf_counter() - self.start
        print(f"  {self.folder.name}/{stem}.png  {seconds:5.2f} s", flush=True)
        self.start = time.perf_counter()


def deep_pointer() -> tuple[Encoder, Classifier, Task]:
    """A 3-layer x 4-head encoder trained 300 steps on the pointer task (as in notebook 08):
    the shipped toy models have one or two heads, too few to compare or prune."""
    task = get_task("pointer")
    config = EncoderConfig(vocab_size=task.vocab_size, d_model=32, n_heads=4, n_layers=3,
                           d_ff=64, max_len=task.max_len, positional="learned")  # fmt: skip
    model, classifier = Encoder(config, seed=0), Classifier(config.d_model, task.n_classes, seed=1)
    train(model, classifier, task, steps=300, lr=3e-3, warmup_steps=50, progress=False)
    return model, classifier, task


def toy_tokens(task: Task, ids: np.ndarray) -> list[str]:
    """Token labels of one toy sequence; the pointer task's index token shows as ``@k``."""
    if isinstance(task, Pointer):
        return [str(t) for t in ids[:-1]] + [f"@{ids[-1] - task.first_index_id}"]
    return [str(t) for t in ids]


def toy_heads_figures(shelf: Shelf, name: str, model: Encoder, classifier: Classifier,
                      task: Task) -> None:  # fmt: skip
    """Figures about the heads of a multi-head toy model: statistics, similarity, diagnostics
    and pruning."""
    batch = held_out(task, 256)
    _, trace = model.run_with_trace(batch.token_ids, batch.mask, keep="*.attn.weights")
    A = attention_weights(trace)
    stats = head_statistics(A, batch.token_ids, batch.mask, pad_id=0)
    shelf.add(f"{name}_head_statistics",
              "head_statistics_figure(head_statistics(A, ids, mask, pad_id=0), head_roles(stats), "
              f"quantities={list(TOY_STATISTICS)}): 256 held-out inputs",
              head_statistics_figure(stats, head_roles(stats), TOY_STATISTICS))  # fmt: skip
    D = head_distances(A, batch.mask)
    L, H = model.config.n_layers, model.config.n_heads
    shelf.add(f"{name}_head_similarity",
              "head_similarity_figure(D, classical_mds(D), head_names(L, H), H), "
              "D = head_distances(A, mask)",
              head_similarity_figure(D, classical_mds(D), head_names(L, H), H))  # fmt: skip

    train_set, val = task.generate(256, seed=1), held_out(task)
    T_train, T_val = train_set.attention_target, val.attention_target
    targets = None if T_train is None or T_val is None else (T_train, T_val)
    report = diagnose(model, train_set.token_ids, train_set.mask, pad_id=0,
                      held_out=(val.token_ids, val.mask), targets=targets)  # fmt: skip
    shelf.add(f"{name}_diagnostics",
              "diagnostics_figure(diagnose(model, train_ids, train_mask, pad_id=0, "
              "held_out=(val_ids, val_mask), targets=(T_train, T_val)))",
              diagnostics_figure(report))  # fmt: skip

    def accuracy(hidden: np.ndarray) -> float:
        return task.score(classifier(hidden, batch.mask), batch)

    loss = classification_loss(classifier, batch.targets, batch.mask)
    importance = gradient_importance(model, batch.token_ids, loss, batch.mask)
    drop = ablation_importance(model, batch.token_ids, accuracy, batch.mask)
    curves = [
        pruning_curve(model, batch.token_ids, accuracy, importance_order(importance), batch.mask,
                      label="gradient importance"),
        pruning_curve(model, batch.token_ids, accuracy, importance_order(drop), batch.mask,
                      label="ablation importance"),
    ]  # fmt: skip
    randoms = [
        pruning_curve(model, batch.token_ids, accuracy, random_order(L, H, seed), batch.mask)
        for seed in range(N_RANDOM_ORDERS)
    ]
    mean = np.mean([c.metric for c in randoms], axis=0)
    curves.append(replace(randoms[0], metric=mean, label=f"random (mean of {N_RANDOM_ORDERS})"))
    shelf.add(f"{name}_pruning",
              "pruning_curves_figure([pruning_curve(model, ids, accuracy, order) for order in "
              "(gradient importance, ablation importance, random)], 'held-out accuracy'): "
              "256 held-out inputs",
              pruning_curves_figure(curves, "held-out accuracy"))  # fmt: skip


def toy_input_figures(shelf: Shelf, name: str, model: Encoder, classifier: Classifier,
                      task: Task) -> None:  # fmt: skip
    """Figures about one toy model's inputs: relevance maps, token scores, permutation and the
    agreement of rankings."""
    batch = held_out(task, 64)
    ids, scored = batch.token_ids[0], np.flatnonzero(batch.targets[0] >= 0)
    i = int(scored[-1])  # the last position with a target
    tokens, S = toy_tokens(task, ids), len(ids)
    _, trace = model.run_with_trace(ids)
    A = attention_weights(trace)  # (L, 1, H, S, S)
    maps = {
        f"raw attention, layer {model.config.n_layers - 1} (mean of heads)": A[-1, 0].mean(axis=0),
        "attention_rollout(A)[-1, 0]": attention_rollout(A)[-1, 0],
        "attention_flow(A)[-1, 0]": attention_flow(A)[-1, 0],
    }
    shelf.add(f"{name}_relevance",
              "relevance_maps_figure({raw, attention_rollout(A)[-1, 0], attention_flow(A)[-1, 0]}, "
              "tokens): one held-out input", relevance_maps_figure(maps, tokens))  # fmt: skip
    predicted = int(classifier(model(ids))[0, i].argmax())
    F = class_logit(classifier, classes=predicted, position=i)
    scores = {
        "occlusion (by PAD)": occlusion(model, ids, F, replace_with=0),
        "gradient x input": gradient_x_input(model, ids, F),
        "Integrated Gradients": integrated_gradients(model, ids, F, np.zeros_like(ids),
                                                     steps=50).scores,
        "grad-weighted rollout - I": (gradient_weighted_rollout(model, ids, F) - np.eye(S))[i],
        "attention rollout": maps["attention_rollout(A)[-1, 0]"][i],
    }  # fmt: skip
    title = f"why the model predicts {predicted} at position {i} ({tokens[i]})"
    shelf.add(f"{name}_token_scores",
              "token_scores_figure({occlusion, gradient_x_input, integrated_gradients(steps=50), "
              f"(gradient_weighted_rollout(...) - I)[{i}], attention_rollout(A)[-1, 0, {i}]}}, "
              f"tokens, highlight={i}): F = class_logit(classifier, {predicted}, position={i})",
              token_scores_figure(scores, tokens, highlight=i, title=title))  # fmt: skip
    changes, peak = permutation_effect(model, classifier, batch, n_permutations=20)
    shelf.add(f"{name}_permutation",
              "permutation_figure(attention_permutation_effect(model, ids, p_correct, mask, "
              "n_permutations=20), peak): 64 held-out inputs, each at its first scored position",
              permutation_figure(changes, peak))  # fmt: skip
    sample = batch.select(slice(0, 16))

    def objective_of(b: int) -> tuple[Objective, int]:
        scored = np.flatnonzero(sample.targets[b] >= 0)
        i = int(scored[b % len(scored)])
        return class_logit(classifier, sample.targets[b, i], i), i

    agreement = compare_rankings(model, sample.token_ids, objective_of, sample.mask)
    shelf.add(f"{name}_rankings",
              "ranking_agreement_figure(compare_rankings(model, ids, objective_of, mask)): "
              "16 held-out inputs, each explained at another scored position",
              ranking_agreement_figure(agreement))  # fmt: skip


#: Tasks of the uniform-attention figure, trained their own number of steps (a second or two
#: each), and tasks trained only :data:`UNIFORM_SHORT_STEPS` steps (theirs take longer).
UNIFORM_TASKS = ("reverse", "pointer")
UNIFORM_SHORT_TASKS = ("histogram", "brackets")
UNIFORM_SHORT_STEPS = 800
#: Statistics drawn for toy models: they have no special tokens and no punctuation.
TOY_STATISTICS = ("entropy", "distance", "confidence", "self", "previous", "next", "padding")


def render_interpret_toy(folder: Path, dpi: int) -> list[Shown]:
    """Every figure of :mod:`viz.interpret` for toy models (small budgets, see the captions)."""
    shelf = Shelf(folder, dpi)
    model, classifier, task = deep_pointer()
    toy_heads_figures(shelf, "pointer_3x4", model, classifier, task)
    toy_input_figures(shelf, "pointer_3x4", model, classifier, task)
    model, classifier, task = load_toy_model("sort")
    toy_heads_figures(shelf, "sort", model, classifier, task)
    for name, seed in (("pointer", 0), ("reverse", 0), ("twin", 0), ("twin", 4)):
        model, classifier, task = load_toy_model(name, seed)
        toy_input_figures(shelf, f"{name}_seed{seed}", model, classifier, task)
    shelf.add("twin_seeds",
              "twin_seeds_figure(twin_seeds_experiment([0, 4], n=4)): the two shipped twin "
              "models, attributions on 4 inputs",
              twin_seeds_figure(twin_seeds_experiment([0, 4], n=4)))  # fmt: skip
    results = uniform_attention_experiment(UNIFORM_TASKS)
    results += uniform_attention_experiment(UNIFORM_SHORT_TASKS, steps=UNIFORM_SHORT_STEPS)
    shelf.add("uniform_attention",
              f"uniform_attention_figure(uniform_attention_experiment({list(UNIFORM_TASKS)}) + "
              f"uniform_attention_experiment({list(UNIFORM_SHORT_TASKS)}, "
              f"steps={UNIFORM_SHORT_STEPS})): each task trained twice, learned and uniform",
              uniform_attention_figure(results))  # fmt: skip
    return shelf.shown


def coarse_pruning_curve(model: Encoder, ids: np.ndarray, metric: Callable[[np.ndarray], float],
                         order: list[tuple[int, int]], inputs: dict[str, Any], label: str,
                         every: int = 6) -> PruningCurve:  # fmt: skip
    """:func:`pruning_curve` at every ``every``-th number of heads removed only: MiniLM's 73
    points would take half a minute. ``inputs`` holds the mask and token_type_ids."""
    n_removed = np.arange(0, len(order) + 1, every)
    values = [metric(model(ids, **inputs, head_mask=head_mask_without(model.config, order[:k])))
              for k in n_removed]  # fmt: skip
    n_heads = model.config.n_layers * model.config.n_heads
    return PruningCurve(order, n_removed, np.array(values), n_heads, label)


def render_interpret_minilm(folder: Path, dpi: int) -> list[Shown]:
    """Every figure of :mod:`viz.interpret` that applies to MiniLM, on :data:`SENTENCES`."""
    shelf = Shelf(folder, dpi)
    model, tokenizer = load_pretrained("all-MiniLM-L6-v2")
    vocab = tokenizer.vocab
    batch = tokenizer(SENTENCES)
    ids, mask, types = batch.input_ids, batch.attention_mask, batch.token_type_ids
    _, trace = model.run_with_trace(ids, mask, token_type_ids=types, keep="*.attn.weights")
    A = attention_weights(trace)
    D = head_distances(A, mask)
    L, H = model.config.n_layers, model.config.n_heads
    shelf.add("minilm_head_similarity",
              "head_similarity_figure(D, classical_mds(D), head_names(6, 12), 12), "
              f"D = head_distances(A, mask): {len(SENTENCES)} sentences",
              head_similarity_figure(D, classical_mds(D), head_names(L, H), H))  # fmt: skip

    one = tokenizer([SENTENCE])
    words, real = one.input_ids, one.attention_mask
    tokens = one.tokens[0]
    _, trace = model.run_with_trace(words, real, token_type_ids=one.token_type_ids)
    A_one = attention_weights(trace)
    maps = {
        "raw attention, layer 5 (mean of heads)": A_one[-1, 0].mean(axis=0),
        "attention_rollout(A)[-1, 0]": attention_rollout(A_one)[-1, 0],
        "attention_flow(A)[-1, 0]": attention_flow(A_one)[-1, 0],
    }
    shelf.add("minilm_relevance",
              f"relevance_maps_figure({{raw, attention_rollout(A)[-1, 0], attention_flow(A)[-1, "
              f"0]}}, tokens): {len(tokens)} tokens (flow takes at most 16)",
              relevance_maps_figure(maps, tokens))  # fmt: skip

    reference = tokenizer([REFERENCE])
    target = sentence_embedding(model(reference), reference.attention_mask)
    F = embedding_cosine(target, real)
    baseline = words.copy()
    baseline[0, 1:-1] = vocab["[PAD]"]  # keep [CLS] and [SEP]
    scores = {
        "occlusion (by [MASK])": occlusion(model, words, F, real, replace_with=vocab["[MASK]"]),
        "gradient x input": gradient_x_input(model, words, F, real),
        "Integrated Gradients": integrated_gradients(model, words, F, baseline, real,
                                                     steps=30).scores,
        "grad-weighted rollout - I": (gradient_weighted_rollout(model, words, F, real)
                                      - np.eye(len(tokens))).mean(axis=0),
        "attention rollout": maps["attention_rollout(A)[-1, 0]"].mean(axis=0),
    }  # fmt: skip
    shelf.add("minilm_token_scores",
              "token_scores_figure({occlusion(replace_with=[MASK]), gradient_x_input, "
              "integrated_gradients(baseline [CLS] [PAD]... [SEP], steps=30), "
              "(gradient_weighted_rollout(...) - I).mean(0), attention_rollout(A)[-1, 0].mean(0)}, "
              f"tokens): F = embedding_cosine(embedding of “{REFERENCE}”, mask); rollouts "
              "averaged over rows (the embedding averages every token)",
              token_scores_figure(scores, tokens,
                                  title=f"why the sentence is close to “{REFERENCE}”"))  # fmt: skip

    full = sentence_embedding(model(ids, mask, token_type_ids=types), mask)

    def cosine_kept(hidden: np.ndarray) -> float:
        return float((sentence_embedding(hidden, mask) * full).sum(1).mean())

    kwargs = {"mask": mask, "token_type_ids": types}
    drop = ablation_importance(model, ids, cosine_kept, **kwargs)
    curves = [
        coarse_pruning_curve(model, ids, cosine_kept, importance_order(drop), kwargs,
                             "by ablation importance"),
        coarse_pruning_curve(model, ids, cosine_kept, random_order(L, H, 0), kwargs,
                             "random order"),
    ]  # fmt: skip
    shelf.add("minilm_pruning",
              "pruning_curves_figure([PruningCurve of every 6th head count of order, for order in "
              "(importance_order(ablation_importance(...)), random_order(6, 12))], "
              f"'cosine with the full model's embedding'): {len(SENTENCES)} sentences",
              pruning_curves_figure(curves, "cosine with the full model's embedding"))  # fmt: skip

    other = tokenizer(SENTENCES[4:])
    first = tokenizer(SENTENCES[:4])
    report = diagnose(model, first.input_ids, first.attention_mask,
                      sink_ids=[vocab["[CLS]"], vocab["[SEP]"]], sink_positions=(),
                      held_out=(other.input_ids, other.attention_mask),
                      pad_id=vocab["[PAD]"])  # fmt: skip
    shelf.add("minilm_diagnostics",
              "diagnostics_figure(diagnose(model, ids, mask, sink_ids=[CLS, SEP], "
              "held_out=(other_ids, other_mask), pad_id=PAD)): 4 + 4 sentences",
              diagnostics_figure(report))  # fmt: skip

    def cosines(hidden: np.ndarray) -> np.ndarray:
        return (sentence_embedding(hidden, mask) * full).sum(1)

    changes = attention_permutation_effect(model, ids, cosines, mask, n_permutations=10)
    real_rows = mask.astype(bool)  # (B, S)
    peak = A[-1].max(axis=-1).mean(axis=1)  # (B, S): each row's max, mean over heads
    peak = (peak * real_rows).sum(1) / real_rows.sum(1)
    shelf.add("minilm_permutation",
              "permutation_figure(attention_permutation_effect(model, ids, cosine with the full "
              "embedding, mask, n_permutations=10), peak): peak = last block's max weight, mean "
              f"over heads and real rows; {len(SENTENCES)} sentences",
              permutation_figure(changes, peak))  # fmt: skip

    def objective_of(b: int) -> tuple[Objective, int]:
        return embedding_cosine(target, mask[b : b + 1]), 0

    special = [vocab["[CLS]"], vocab["[SEP]"]]
    base = np.where(np.isin(ids, special), ids, vocab["[PAD]"])  # keep [CLS] and [SEP]
    agreement = compare_rankings(model, ids, objective_of, mask, baseline_ids=base,
                                 replace_with=vocab["[MASK]"])  # fmt: skip
    shelf.add("minilm_rankings",
              "ranking_agreement_figure(compare_rankings(model, ids, objective_of, mask, "
              f"replace_with=[MASK])): F = cosine with the embedding of “{REFERENCE}”, attention = "
              f"the [CLS] row; {len(SENTENCES)} sentences",
              ranking_agreement_figure(agreement))  # fmt: skip
    return shelf.shown


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
    parser.add_argument("--only", default=None, choices=[
        "minilm", "long", "long512", "padded", "toy", "interpret_toy", "interpret_minilm",
        "explorer"])  # fmt: skip
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sections = []
    subjects: dict[str, Callable[[], Subject]] = {
        "minilm": minilm_subject,
        "long": lambda: minilm_subject(PARAGRAPH, max_length=64, name="minilm_64_tokens"),
        "long512": lambda: minilm_subject(LONG_TEXT, max_length=512, name="minilm_512_tokens"),
        "padded": padded_subject,
        "toy": toy_subject,
    }
    some = {"long": LONG_INPUT_FIGURES, "long512": LONGEST_INPUT_FIGURES,
            "padded": PADDED_FIGURES}  # fmt: skip
    minilm = None
    for key, make in subjects.items():
        if args.only not in (None, key):
            continue
        subject = make()
        minilm = subject if key == "minilm" else minilm
        folder = args.out / subject.name
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{subject.title}: {len(subject.tokens)} tokens", flush=True)
        if key in some:
            shown = render_some(subject, folder, args.dpi, some[key])
        else:
            shown = render_subject(subject, folder, args.dpi)
        if key == "toy":
            shown += render_training(subject.name, folder, args.dpi)
        sections.append((subject.name, subject.title, shown))
    interpret: dict[str, tuple[str, Callable[[Path, int], list[Shown]]]] = {
        "interpret_toy": ("viz.interpret on toy models: a 3-layer x 4-head pointer model trained "
                          "300 steps, and the shipped models", render_interpret_toy),
        "interpret_minilm": ("viz.interpret on MiniLM (all-MiniLM-L6-v2)",
                             render_interpret_minilm),
    }  # fmt: skip
    for key, (title, render) in interpret.items():
        if args.only in (None, key):
            print(title, flush=True)
            sections.append((key, title, render(args.out / key, args.dpi)))
    if args.only in (None, "explorer"):
        subject = minilm or minilm_subject()
        folder = args.out / "explorer"
        folder.mkdir(parents=True, exist_ok=True)
        sections.append(("explorer", "The explorer (viz.explore) on MiniLM, a few settings",
                         render_explorer(subject, folder, args.dpi)))  # fmt: skip
    index = write_index(args.out, sections)
    print(f"wrote {index} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
