"""Interpretability on trained models: the numbers behind the interpret gallery.

Run ``python benchmarks/interpret.py`` (about a minute on one core; ``--no-minilm`` skips the
pretrained model). It prints:

1. the head roles of every shipped toy model;
2. a deeper model (3 layers x 4 heads) trained on the pointer task: Abnar & Zuidema's
   comparison -- Spearman rho of raw attention, rollout and flow with occlusion, per layer;
3. on the same model: Michel et al.'s head importance, ablation importance, and pruning
   curves (accuracy vs heads removed) by importance and at random;
4. Integrated Gradients' completeness error at 20, 50 and 300 steps;
5. all-MiniLM-L6-v2 (if installed): head roles, and the pruning curve of sentence-embedding
   cosine with the full model, by ablation importance and at random.

``--figures DIR`` also saves the ``viz.interpret`` figures of these results as PNG files.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.interpret.attribution import (
    gradient_weighted_rollout,
    gradient_x_input,
    integrated_gradients,
    occlusion,
)
from minitransformer.interpret.compare import relevance_vs_occlusion, spearman
from minitransformer.interpret.importance import (
    PruningCurve,
    ablation_importance,
    gradient_importance,
    importance_order,
    pruning_curve,
    random_order,
)
from minitransformer.interpret.objectives import class_logit, classification_loss
from minitransformer.interpret.rollout import attention_flow, attention_rollout
from minitransformer.interpret.similarity import classical_mds, head_distances, head_names
from minitransformer.interpret.stats import (
    attention_weights,
    head_roles,
    head_statistics,
    punctuation_ids,
    roles_table,
)
from minitransformer.tasks import get_task
from minitransformer.toy_models import available_toy_models, load_toy_model
from minitransformer.training import held_out, train
from viz.interpret import (
    head_similarity_figure,
    head_statistics_figure,
    pruning_curves_figure,
    relevance_maps_figure,
    token_scores_figure,
)

SENTENCES = [
    "The cat sat on the mat.",
    "A man is playing a guitar on the stage.",
    "Transformers read every token of the sentence at once.",
    "She sold the old car and bought a bicycle, which was cheaper.",
    "Is attention an explanation?",
    "The weather in Paris was cold, wet and windy yesterday.",
    "Students learn attention by looking at every number.",
    "Two dogs are running through a field of grass.",
    "The committee postponed its decision until next week.",
    "A small model can still learn a surprising amount.",
    "He said that the train would arrive late, but it was on time.",
    "Birds sing in the morning; owls call at night.",
]


def toy_roles() -> None:
    print("== 1. head roles of the shipped toy models ==")
    for name, seed in available_toy_models():
        model, _, task = load_toy_model(name, seed)
        batch = held_out(task, 256)
        _, trace = model.run_with_trace(batch.token_ids, batch.mask, keep="*.attn.weights")
        stats = head_statistics(attention_weights(trace), batch.token_ids, batch.mask, pad_id=0)
        roles = head_roles(stats)
        summary = ", ".join(f"L{r.layer}H{r.head} {r.role} ({r.evidence})" for r in roles)
        print(f"{name} seed {seed}: {summary}")


def deep_pointer(steps: int) -> tuple[Encoder, Classifier]:
    task = get_task("pointer")
    config = EncoderConfig(
        vocab_size=task.vocab_size, d_model=32, n_heads=4, n_layers=3, d_ff=64,
        max_len=task.max_len, positional="learned",
    )  # fmt: skip
    model = Encoder(config, seed=0)
    classifier = Classifier(config.d_model, task.n_classes, seed=1)
    start = time.perf_counter()
    train(model, classifier, task, steps=steps, lr=3e-3, warmup_steps=50, progress=False)
    batch = held_out(task, 512)
    accuracy = task.score(classifier(model(batch.token_ids, batch.mask)), batch)
    print(
        f"pointer, 3 layers x 4 heads, {steps} steps in {time.perf_counter() - start:.0f} s: "
        f"held-out accuracy {accuracy:.3f}"
    )
    return model, classifier


def abnar_zuidema(model: Encoder, classifier: Classifier, n: int = 200) -> None:
    print("\n== 2. Abnar & Zuidema: Spearman rho with occlusion (blank-out by [PAD]) ==")
    task = get_task("pointer")
    batch = held_out(task, n)
    i = batch.token_ids.shape[1] - 1  # the index token's position: the one with a target
    logits = classifier(model(batch.token_ids, batch.mask))
    predicted = logits[:, i].argmax(-1)

    def objective_of(b: int):
        return class_logit(classifier, classes=int(predicted[b]), position=i), i

    print(f"{'layer':>5}  {'raw':>12}  {'rollout':>12}  {'flow':>12}")
    for layer in range(model.config.n_layers):
        agreement = relevance_vs_occlusion(
            model, batch.token_ids, objective_of, batch.mask, replace_with=0, layer=layer
        )
        cells = [f"{m:.2f} +- {s:.2f}" for m, s in agreement.summary().values()]
        print(f"{layer + 1:>5}  " + "  ".join(f"{c:>12}" for c in cells))


def pruning(model: Encoder, classifier: Classifier) -> list[PruningCurve]:
    print("\n== 3. head importance and pruning (Michel et al. 2019) ==")
    task = get_task("pointer")
    batch = held_out(task, 512)

    def accuracy(hidden: np.ndarray) -> float:
        return task.score(classifier(hidden), batch)

    loss = classification_loss(classifier, batch.targets, batch.mask)
    I = gradient_importance(model, batch.token_ids, loss, batch.mask)
    I_raw = gradient_importance(model, batch.token_ids, loss, batch.mask, normalize=False)
    drop = ablation_importance(model, batch.token_ids, accuracy, batch.mask)
    print("gradient importance (l2-normalised per layer):\n", np.round(I, 2))
    print("gradient importance (not normalised, / its max):\n", np.round(I_raw / I_raw.max(), 2))
    print("accuracy drop when one head is removed:\n", np.round(drop, 3))
    rho, rho_raw = spearman(I.ravel(), drop.ravel()), spearman(I_raw.ravel(), drop.ravel())
    print(f"Spearman with the ablation drop: normalised {rho:.2f}, not normalised {rho_raw:.2f}")
    L, H = model.config.n_layers, model.config.n_heads
    curves = {
        "gradient importance": pruning_curve(
            model, batch.token_ids, accuracy, importance_order(I), batch.mask
        ),
        "gradient (raw)": pruning_curve(
            model, batch.token_ids, accuracy, importance_order(I_raw), batch.mask
        ),
        "ablation importance": pruning_curve(
            model, batch.token_ids, accuracy, importance_order(drop), batch.mask
        ),
    }
    randoms = [
        pruning_curve(model, batch.token_ids, accuracy, random_order(L, H, seed), batch.mask)
        for seed in range(10)
    ]
    print("heads removed:      " + " ".join(f"{k:>5}" for k in range(L * H + 1)))
    for name, curve in curves.items():
        print(f"{name:<20}" + " ".join(f"{v:5.2f}" for v in curve.metric)
              + f"   heads needed for 90%: {curve.heads_needed(0.9)}")  # fmt: skip
    mean_random = np.mean([c.metric for c in randoms], axis=0)
    needed = [c.heads_needed(0.9) for c in randoms]
    print(f"{'random (mean of 10)':<20}" + " ".join(f"{v:5.2f}" for v in mean_random)
          + f"   heads needed for 90%: {np.mean(needed):.1f} on average")  # fmt: skip
    labelled = [replace(c, label=name) for name, c in curves.items()]
    return [*labelled, replace(randoms[0], metric=mean_random, label="random (mean of 10)")]


def ig_completeness(model: Encoder, classifier: Classifier, n: int = 20) -> None:
    print("\n== 4. Integrated Gradients completeness (baseline: all [PAD]) ==")
    task = get_task("pointer")
    batch = held_out(task, n)
    i = batch.token_ids.shape[1] - 1
    logits = classifier(model(batch.token_ids, batch.mask))
    for steps in (20, 50, 300):
        errors = []
        for b in range(n):
            objective = class_logit(classifier, classes=int(logits[b, i].argmax()), position=i)
            baseline = np.zeros_like(batch.token_ids[b])
            result = integrated_gradients(
                model, batch.token_ids[b], objective, baseline, steps=steps
            )
            errors.append(result.relative_delta)
        print(f"steps {steps:>3}: |sum IG - (F(x) - F(x'))| / |F(x) - F(x')| "
              f"median {np.median(errors):.4f}, max {np.max(errors):.4f}")  # fmt: skip


def minilm(figures: Path | None) -> None:
    print("\n== 5. all-MiniLM-L6-v2 ==")
    try:
        from minitransformer.pretrained import load_pretrained

        model, tokenizer = load_pretrained("all-MiniLM-L6-v2")
    except (ImportError, FileNotFoundError) as error:
        print(f"skipped: {error}")
        return
    batch = tokenizer(SENTENCES)
    ids, mask, types = batch.input_ids, batch.attention_mask, batch.token_type_ids
    _, trace = model.run_with_trace(ids, mask, token_type_ids=types, keep="*.attn.weights")
    vocabulary = [tokenizer.ids_to_tokens[i] for i in range(tokenizer.vocab_size)]
    special = [tokenizer.vocab[tokenizer.cls_token], tokenizer.vocab[tokenizer.sep_token]]
    stats = head_statistics(
        attention_weights(trace), ids, mask, special_ids=special,
        punctuation=punctuation_ids(vocabulary), pad_id=tokenizer.vocab[tokenizer.pad_token],
    )  # fmt: skip
    roles = head_roles(stats)
    print(roles_table(roles))
    print("role counts:", dict(Counter(r.role for r in roles)))
    if figures is not None:
        save(head_statistics_figure(stats, roles), figures / "minilm_head_statistics.png")
        D = head_distances(attention_weights(trace), mask)
        names = head_names(model.config.n_layers, model.config.n_heads)
        fig = head_similarity_figure(D, classical_mds(D), names, model.config.n_heads)
        save(fig, figures / "minilm_head_similarity.png")

    from minitransformer.pooling import sentence_embedding

    full = sentence_embedding(model(ids, mask, token_type_ids=types), mask)

    def cosine_kept(hidden: np.ndarray) -> float:
        return float((sentence_embedding(hidden, mask) * full).sum(1).mean())

    start = time.perf_counter()
    drop = ablation_importance(model, ids, cosine_kept, mask, token_type_ids=types)
    L, H = model.config.n_layers, model.config.n_heads
    kwargs = {"mask": mask, "token_type_ids": types}
    by_importance = pruning_curve(model, ids, cosine_kept, importance_order(drop), **kwargs)
    at_random = pruning_curve(model, ids, cosine_kept, random_order(L, H, 0), **kwargs)
    print(f"pruning ({time.perf_counter() - start:.0f} s): mean cosine with the full model's "
          f"sentence embeddings after removing k of {L * H} heads")  # fmt: skip
    for k in (0, 6, 12, 18, 24, 36, 48, 60, 72):
        print(f"  k={k:>2}: by ablation importance {by_importance.metric[k]:.3f}, "
              f"random {at_random.metric[k]:.3f}")  # fmt: skip
    if figures is not None:
        curves = [replace(by_importance, label="by ablation importance"),
                  replace(at_random, label="random order")]  # fmt: skip
        fig = pruning_curves_figure(curves, "cosine with the full model's embedding", 0.9)
        save(fig, figures / "minilm_pruning.png")
    for level in (0.99, 0.95, 0.9):
        needed = by_importance.heads_needed(level), at_random.heads_needed(level)
        print(f"  heads needed to keep cosine >= {level}: by importance {needed[0]}, "
              f"random {needed[1]}")  # fmt: skip


def save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=90)
    print(f"saved {path}")


def pointer_figures(model: Encoder, classifier: Classifier, curves: list, figures: Path) -> None:
    """The pointer model's figures: roles, similarity, relevance maps, attributions, pruning."""
    task = get_task("pointer")
    batch = held_out(task, 256)
    _, trace = model.run_with_trace(batch.token_ids, batch.mask, keep="*.attn.weights")
    A = attention_weights(trace)
    stats = head_statistics(A, batch.token_ids, batch.mask, pad_id=0)
    save(head_statistics_figure(stats, head_roles(stats)), figures / "pointer_head_statistics.png")
    D = head_distances(A, batch.mask)
    names = head_names(model.config.n_layers, model.config.n_heads)
    fig = head_similarity_figure(D, classical_mds(D), names, model.config.n_heads)
    save(fig, figures / "pointer_head_similarity.png")
    b, i = 0, batch.token_ids.shape[1] - 1
    ids = batch.token_ids[b]
    tokens = [str(t) for t in ids[:-1]] + [f"@{ids[-1] - task.first_index_id}"]
    one = A[:, b : b + 1]
    maps = {
        "raw attention (last layer)": one[-1, 0].mean(axis=0),
        "rollout": attention_rollout(one)[-1, 0],
        "flow": attention_flow(one)[-1, 0],
    }
    save(relevance_maps_figure(maps, tokens), figures / "pointer_relevance_maps.png")
    predicted = int(classifier(model(ids))[0, i].argmax())
    objective = class_logit(classifier, classes=predicted, position=i)
    scores = {
        "occlusion": occlusion(model, ids, objective, replace_with=0),
        "gradient x input": gradient_x_input(model, ids, objective),
        "Integrated Gradients": integrated_gradients(
            model, ids, objective, np.zeros_like(ids), steps=50
        ).scores,
        "grad-weighted rollout": gradient_weighted_rollout(model, ids, objective)[i],
        "rollout": maps["rollout"][i],
    }
    title = f"why the model predicts {predicted} at {tokens[i]}"
    fig = token_scores_figure(scores, tokens, highlight=i, title=title)
    save(fig, figures / "pointer_attributions.png")
    save(pruning_curves_figure(curves, "held-out accuracy"), figures / "pointer_pruning.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps, pointer model")
    parser.add_argument("--no-minilm", action="store_true", help="skip all-MiniLM-L6-v2")
    parser.add_argument("--figures", type=Path, help="save the figures as PNG files here")
    args = parser.parse_args()
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
    toy_roles()
    model, classifier = deep_pointer(args.steps)
    abnar_zuidema(model, classifier)
    curves = pruning(model, classifier)
    ig_completeness(model, classifier)
    if args.figures is not None:
        pointer_figures(model, classifier, curves, args.figures)
    if not args.no_minilm:
        minilm(args.figures)


if __name__ == "__main__":
    main()
