"""The ``minitransformer`` command line: ``minitransformer demo``.

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
    args = parser.parse_args(argv)

    if args.command == "demo":
        demo(args.out, args.sentence, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
