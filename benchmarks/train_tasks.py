"""Time to train each toy task from scratch, with its held-out accuracy and pattern score.

Trains a fresh model on every task of :mod:`minitransformer.tasks` with the task's shipped
settings (:func:`minitransformer.training.train_task`; the same run as
``minitransformer train TASK --seed S``) and prints a Markdown table: steps, seconds,
held-out accuracy, and the best head's ``pattern_score`` against the task's target matrix.

    python benchmarks/train_tasks.py [--tasks reverse pointer ...]

Targets (issue 4): reverse and pointer >= 0.99 accuracy and pattern score >= 0.9, trained in
well under 60 s on 2 cores (aim: <= 10 s).
"""

from __future__ import annotations

import argparse

from minitransformer.tasks import TASKS, TWIN_SEEDS
from minitransformer.training import assess, train_task


def runs(names: list[str]) -> list[tuple[str, int]]:
    """(task, seed) pairs: seed 0 for every task, and both twin solutions."""
    pairs = [(name, 0) for name in names]
    if "twin" in names:
        pairs.insert(pairs.index(("twin", 0)) + 1, ("twin", TWIN_SEEDS["attend"]))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    args = parser.parse_args()
    print(
        "| task | seed | kind | steps | seconds | held-out accuracy | pattern score (layer, head) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, seed in runs(args.tasks):
        model, classifier, history = train_task(name, seed=seed, progress=False)
        result = assess(model, classifier, name)
        pattern = f"{result.pattern_score:.3f} ({result.layer}, {result.head})"
        cells = [name, seed, TASKS[name].kind, history.steps[-1], f"{history.seconds:.1f}",
                 f"{result.accuracy:.4f}", pattern]  # fmt: skip
        print("| " + " | ".join(str(cell) for cell in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
