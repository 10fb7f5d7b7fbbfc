"""The ``minitransformer`` command line: ``minitransformer demo`` and ``minitransformer train``.

This is the one module of :mod:`minitransformer` that imports :mod:`viz`: it wires a model
to its pictures.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.tasks import TASKS

DEMO_SENTENCE = "the cat sat on the mat because it was tired"


def word_vocabulary(words: Sequence[str]) -> dict[str, int]:
    """A toy vocabulary: ``[PAD]`` = 0, then each distinct word in order of appearance."""
    vocab = {"[PAD]": 0}
    for word in words:
        vocab.setdefault(word, len(vocab))
    return vocab


def demo(out_dir: Path, sentence: str = DEMO_SENTENCE, seed: int = 0) -> list[Path]:
    """Run a small random encoder on a sentence, print its trace, draw one head.

    Returns the paths of the files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    from viz import attention_heatmap

    words = sentence.split()
    if not words:
        raise ValueError("the demo sentence is empty")
    vocab = word_vocabulary(words)
    config = EncoderConfig(vocab_size=len(vocab), d_model=32, n_heads=4, n_layers=2, d_ff=64)
    model = Encoder(config, seed=seed)
    token_ids = np.array([[vocab[w] for w in words]])
    _, trace = model.run_with_trace(token_ids)

    print(f"A random {config.n_layers}-layer encoder (d_model={config.d_model}, "
          f"{config.n_heads} heads) on: {sentence!r}\n")  # fmt: skip
    print(trace.summary())

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "attention_heatmap.png"
    fig = attention_heatmap(trace, layer=0, head=0, tokens=words)
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}  (layer 0, head 0; random weights, so the pattern means nothing yet)")
    return [path]


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
    demo_parser = commands.add_parser("demo", help="run an encoder on a sentence and draw a head")
    demo_parser.add_argument(
        "--out", type=Path, default=Path("minitransformer-demo"), help="folder for the figures"
    )
    demo_parser.add_argument("--sentence", default=DEMO_SENTENCE, help="the input sentence")
    demo_parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
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
        demo(args.out, args.sentence, args.seed)
    elif args.command == "train":
        if args.steps is not None and args.steps < 1:
            parser.error(f"--steps must be a positive int, got {args.steps}")
        train(args.task, args.steps, args.seed, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
