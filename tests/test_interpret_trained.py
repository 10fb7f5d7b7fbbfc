"""interpret on trained models: the shipped toy checkpoints and (if installed) all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pytest

from minitransformer.interpret.attribution import integrated_gradients, occlusion
from minitransformer.interpret.objectives import class_logit
from minitransformer.interpret.stats import attention_weights, head_roles, head_statistics
from minitransformer.toy_models import load_toy_model
from minitransformer.training import held_out


def twin_first_rates(seed: int, n: int = 24) -> tuple[float, float]:
    """How often raw attention and occlusion rank the twin first (the query itself excluded)."""
    model, classifier, task = load_toy_model("twin", seed)
    batch = held_out(task, n)
    _, trace = model.run_with_trace(batch.token_ids, batch.mask)
    weights = trace["blocks.0.attn.weights"][:, 0]  # (B, S, S), the only head
    logits = classifier(model(batch.token_ids, batch.mask))
    attention_hits = occlusion_hits = 0
    for b in range(n):
        i = b % 8  # one query per sequence
        twin = batch.targets[b, i]
        row = weights[b, i].copy()
        row[i] = -1.0
        attention_hits += row.argmax() == twin
        objective = class_logit(classifier, classes=int(logits[b, i].argmax()), position=i)
        scores = occlusion(model, batch.token_ids[b], objective, replace_with=0)
        scores[i] = -np.inf
        occlusion_hits += scores.argmax() == twin
    return attention_hits / n, occlusion_hits / n


def test_twin_models_attend_oppositely_but_occlusion_finds_the_twin_in_both():
    """Jain & Wallace's point on the shipped twin models: equally accurate, opposite attention."""
    avoid_attention, avoid_occlusion = twin_first_rates(seed=0)
    attend_attention, attend_occlusion = twin_first_rates(seed=4)
    assert avoid_attention < 0.1 and attend_attention > 0.9
    assert avoid_occlusion > 0.5 and attend_occlusion > 0.9


def test_reverse_head_is_sharp_but_not_positional():
    model, _, task = load_toy_model("reverse")
    batch = held_out(task, 64)
    _, trace = model.run_with_trace(batch.token_ids, batch.mask)
    stats = head_statistics(attention_weights(trace), batch.token_ids, batch.mask)
    assert stats.confidence[0, 0] > 0.9
    assert stats.top_offset_share[0, 0] < 0.5  # the mirror's offset changes with the query
    assert head_roles(stats)[0].role == "sharp"


def test_integrated_gradients_completeness_on_the_pointer_model():
    model, classifier, task = load_toy_model("pointer")
    batch = held_out(task, 5)
    i = batch.token_ids.shape[1] - 1  # the index token, the position with a target
    logits = classifier(model(batch.token_ids))
    for b in range(5):
        objective = class_logit(classifier, classes=int(logits[b, i].argmax()), position=i)
        baseline = np.zeros_like(batch.token_ids[b])
        result = integrated_gradients(model, batch.token_ids[b], objective, baseline, steps=50)
        assert result.relative_delta < 0.01, (b, result)


def test_minilm_has_special_token_sinks():
    try:
        from minitransformer.pretrained import load_pretrained

        model, tokenizer = load_pretrained("all-MiniLM-L6-v2")
    except FileNotFoundError as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")
    batch = tokenizer(["The cat sat on the mat.", "Is attention an explanation?"])
    _, trace = model.run_with_trace(batch.input_ids, batch.attention_mask, keep="*.attn.weights")
    special = [tokenizer.vocab[tokenizer.cls_token], tokenizer.vocab[tokenizer.sep_token]]
    stats = head_statistics(
        attention_weights(trace), batch.input_ids, batch.attention_mask, special_ids=special,
        pad_id=tokenizer.vocab[tokenizer.pad_token],
    )  # fmt: skip
    roles = [r.role for r in head_roles(stats)]
    assert len(roles) == 72
    assert roles.count("special-token sink") >= 10  # Clark et al.: heavy [CLS]/[SEP] heads
    assert stats.padding.max() == 0.0  # the mask was passed: no weight on padding
