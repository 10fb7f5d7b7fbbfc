"""Is attention an explanation? The numbers behind issue 7's items 7 and 8.

Run ``python benchmarks/explanation.py`` (a few minutes on one core; ``--quick`` uses fewer
seeds and steps, ``--no-minilm`` skips the pretrained model). It prints:

1. the diagnostics report of every shipped toy model, of a reverse model overfit on 16
   examples, and of all-MiniLM-L6-v2 (if installed);
2. the Jain & Wallace permutation test on the shipped crisp and diffuse models: the median
   change of the correct class's probability when attention is shuffled;
3. every task trained with learned and with uniform attention (Wiegreffe & Pinter): which
   tasks keep their accuracy;
4. the twin task over several seeds: accuracy, attention on the twin, and how often
   attention, occlusion, gradient x input and Integrated Gradients rank the twin first;
5. the mean Spearman agreement of attention, gradient x input, IG and occlusion rankings on
   the shipped models.

``--figures DIR`` also saves the figures as PNG files.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from minitransformer.encoder import Encoder
from minitransformer.functional import softmax
from minitransformer.heads import Classifier
from minitransformer.interpret.diagnostics import diagnose
from minitransformer.interpret.explanation import (
    RankingAgreement,
    compare_rankings,
    twin_seeds_experiment,
    twin_table,
    uniform_attention_experiment,
    uniform_attention_table,
)
from minitransformer.interpret.interventions import attention_permutation_effect
from minitransformer.interpret.objectives import Objective, class_logit
from minitransformer.interpret.stats import attention_weights
from minitransformer.tasks import TASKS, Batch, get_task
from minitransformer.toy_models import available_toy_models, load_toy_model
from minitransformer.training import held_out, make_model, train
from viz.interpret import (
    diagnostics_figure,
    permutation_figure,
    ranking_agreement_figure,
    twin_seeds_figure,
    uniform_attention_figure,
)

SENTENCES = [
    "The cat sat on the mat.",
    "A man is playing a guitar on the stage.",
    "Is attention an explanation?",
    "She sold the old car and bought a bicycle, which was cheaper.",
    "The weather in Paris was cold, wet and windy yesterday.",
    "Two dogs are running through a field of grass.",
    "The committee postponed its decision until next week.",
    "Birds sing in the morning; owls call at night.",
]
HELD_OUT_SENTENCES = [
    "A woman is slicing an onion in the kitchen.",
    "Transformers read every token of the sentence at once.",
    "He said that the train would arrive late, but it was on time.",
    "Students learn attention by looking at every number.",
    "A small model can still learn a surprising amount.",
    "The river flooded the village after three days of rain.",
    "Why do some heads attend to the separator token?",
    "Music played softly while the guests arrived.",
]


def save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=90)
    print(f"saved {path}")


def diagnostics(figures: Path | None, minilm: bool) -> None:
    print("== 1. diagnostics ==")
    for name, seed in available_toy_models():
        model, _, task = load_toy_model(name, seed)
        train_set, val = task.generate(256, seed=1), held_out(task)
        targets = (train_set.attention_target, val.attention_target)
        report = diagnose(model, train_set.token_ids, train_set.mask, pad_id=0,
                          held_out=(val.token_ids, val.mask), targets=targets)  # fmt: skip
        print(f"-- {name} seed {seed}\n{report}")
    task = get_task("reverse")
    tiny, val = task.generate(16, seed=1000), held_out(task)
    model, classifier = make_model(task, 0)
    train(model, classifier, tiny, steps=600, lr=task.settings.lr, progress=False)
    for targets in ((tiny.attention_target, val.attention_target), None):
        report = diagnose(model, tiny.token_ids, held_out=(val.token_ids, None), targets=targets)
        print(f"-- reverse trained on 16 examples ({report.overfit_measure})\n{report}")
    if not minilm:
        return
    try:
        from minitransformer.pretrained import load_pretrained

        model, tokenizer = load_pretrained("all-MiniLM-L6-v2")
    except (ImportError, FileNotFoundError) as error:
        print(f"MiniLM skipped: {error}")
        return
    batch, other = tokenizer(SENTENCES), tokenizer(HELD_OUT_SENTENCES)
    special = [tokenizer.vocab[tokenizer.cls_token], tokenizer.vocab[tokenizer.sep_token]]
    start = time.perf_counter()
    report = diagnose(model, batch.input_ids, batch.attention_mask, sink_ids=special,
                      sink_positions=(), held_out=(other.input_ids, other.attention_mask),
                      pad_id=tokenizer.vocab[tokenizer.pad_token])  # fmt: skip
    print(f"-- all-MiniLM-L6-v2 ({time.perf_counter() - start:.1f} s)\n{report}")
    if figures is not None:
        save(diagnostics_figure(report), figures / "minilm_diagnostics.png")


def permutation(figures: Path | None) -> None:
    print("\n== 2. permuting attention (median |change| of the correct class's probability) ==")
    for name in ("reverse", "pointer", "shift", "histogram", "sort"):
        changes, peak = permutation_of(name)
        median = np.median(np.abs(changes), axis=0)
        print(f"{name:<10} median |change| {np.median(median):.3f} (mean peak attention "
              f"{peak.mean():.2f})")  # fmt: skip
        if figures is not None:
            save(permutation_figure(changes, peak), figures / f"{name}_permutation.png")


def permutation_of(name: str, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """:func:`permutation_effect` of the shipped model of task ``name`` on n held-out inputs."""
    model, classifier, task = load_toy_model(name)
    return permutation_effect(model, classifier, held_out(task, n))


def permutation_effect(
    model: Encoder, classifier: Classifier, batch: Batch, n_permutations: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """The correct class's probability changes under permuted attention at each input's first
    scored position, and the peak attention there (last block, mean over heads)."""
    position = np.argmax(batch.targets >= 0, axis=1)  # the first scored position
    rows = np.arange(len(batch))

    def correct_probability(hidden: np.ndarray) -> np.ndarray:
        p = softmax(classifier(hidden, batch.mask))
        return p[rows, position, batch.targets[rows, position]]

    changes = attention_permutation_effect(
        model, batch.token_ids, correct_probability, batch.mask, n_permutations=n_permutations
    )
    _, trace = model.run_with_trace(batch.token_ids, batch.mask, keep="*.attn.weights")
    last = attention_weights(trace)[-1]  # (B, H, S, S)
    return changes, last[rows, :, position].max(axis=-1).mean(axis=1)


def uniform(steps: int | None, figures: Path | None) -> None:
    print("\n== 3. learned vs uniform attention (held-out accuracy) ==")
    start = time.perf_counter()
    results = uniform_attention_experiment(list(TASKS), steps=steps)
    print(uniform_attention_table(results))
    print(f"({time.perf_counter() - start:.0f} s)")
    if figures is not None:
        save(uniform_attention_figure(results), figures / "uniform_attention.png")


def twins(seeds: list[int], figures: Path | None) -> None:
    print("\n== 4. the twin task over seeds ==")
    start = time.perf_counter()
    results = twin_seeds_experiment(seeds)
    print(twin_table(results))
    print(f"({time.perf_counter() - start:.0f} s)")
    if figures is not None:
        save(twin_seeds_figure(results), figures / "twin_seeds.png")


def rankings(figures: Path | None) -> None:
    print("\n== 5. agreement of token rankings (mean Spearman rho over 32 inputs) ==")
    for name, seed in (("reverse", 0), ("pointer", 0), ("twin", 0), ("twin", 4),
                       ("histogram", 0)):  # fmt: skip
        agreement = rankings_of(name, seed)
        print(f"-- {name} seed {seed}\n{agreement.table()}")
        if figures is not None:
            fig = ranking_agreement_figure(agreement)
            save(fig, figures / f"{name}_seed{seed}_rankings.png")


def rankings_of(name: str, seed: int, n: int = 32) -> RankingAgreement:
    """compare_rankings on n held-out inputs, each explained at another scored position."""
    model, classifier, task = load_toy_model(name, seed)
    batch = held_out(task, n)

    def objective_of(b: int) -> tuple[Objective, int]:
        scored = np.flatnonzero(batch.targets[b] >= 0)
        i = int(scored[b % len(scored)])
        return class_logit(classifier, batch.targets[b, i], i), i

    return compare_rankings(model, batch.token_ids, objective_of, batch.mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and steps")
    parser.add_argument("--no-minilm", action="store_true", help="skip all-MiniLM-L6-v2")
    parser.add_argument("--figures", type=Path, help="save the figures as PNG files here")
    args = parser.parse_args()
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
    diagnostics(args.figures, not args.no_minilm)
    permutation(args.figures)
    uniform(300 if args.quick else None, args.figures)
    twins([0, 4] if args.quick else list(range(10)), args.figures)
    rankings(args.figures)


if __name__ == "__main__":
    main()
