"""Interpretability with NumPy: what heads do, which heads matter, and what attention hides.

One module per question:

* :mod:`~minitransformer.interpret.stats` -- what does each head look at? (entropy, distance,
  confidence, shares on self / neighbours / special tokens / padding) and a role per head;
* :mod:`~minitransformer.interpret.similarity` -- which heads attend alike? (Jensen-Shannon
  distances, MDS map, clusters);
* :mod:`~minitransformer.interpret.value_weighted` -- how much does each key *add* to a
  query's output? (Kobayashi et al.'s ``||alpha f(x)||``, beside the weight ``alpha``);
* :mod:`~minitransformer.interpret.rollout` -- which *input* tokens reach an output?
  (attention rollout and attention flow);
* :mod:`~minitransformer.interpret.interventions` -- what changes if a head is removed or an
  activation replaced? (zero/mean ablation, activation patching);
* :mod:`~minitransformer.interpret.importance` -- which heads matter, and how many are needed?
  (Michel et al.'s gradient importance, ablation importance, pruning curves);
* :mod:`~minitransformer.interpret.attribution` -- which tokens drive a prediction? (occlusion,
  gradient x input, Integrated Gradients, gradient-weighted rollout);
* :mod:`~minitransformer.interpret.diagnostics` -- what looks wrong? (heads on padding or sinks,
  near-uniform or duplicated heads, attention that differs on held-out inputs), as a report;
* :mod:`~minitransformer.interpret.explanation` -- is attention an explanation? (uniform attention
  retrained, twin seeds, rankings of attention vs attributions; Jain & Wallace 2019, Wiegreffe &
  Pinter 2019);
* :mod:`~minitransformer.interpret.compare` -- do two relevance measures agree? (Spearman,
  Abnar & Zuidema's comparison with occlusion);
* :mod:`~minitransformer.interpret.objectives` -- the quantities explained (a class logit, a
  loss, a sentence-embedding cosine), each returned with its gradient.

Conventions: attention weights are ``A[l, b, h, i, j]`` (row i = query reads column j = key);
a padding mask is (B, S) with 1 for real tokens. Every function that runs the model takes its
input as the model does -- ``token_ids, mask=None, token_type_ids=None`` or a tokenizer
``BatchEncoding`` alone -- through :mod:`~minitransformer.interpret.inputs`, so a sentence pair
keeps its token types in every pass.
"""

from minitransformer.interpret.attribution import (
    IGResult,
    gradient_weighted_rollout,
    gradient_x_input,
    integrated_gradients,
    occlusion,
)
from minitransformer.interpret.compare import (
    Agreement,
    rank,
    relevance_vs_occlusion,
    spearman,
    spearman_or_nan,
)
from minitransformer.interpret.diagnostics import (
    FLAGS,
    DiagnosticThresholds,
    Flag,
    Report,
    diagnose,
    flagged_heads,
)
from minitransformer.interpret.explanation import (
    RANKING_METHODS,
    RankingAgreement,
    TwinSeedResult,
    UniformAttentionResult,
    compare_rankings,
    train_with_uniform_attention,
    twin_analysis,
    twin_seeds_experiment,
    twin_table,
    uniform_attention,
    uniform_attention_accuracy,
    uniform_attention_experiment,
    uniform_attention_patch,
    uniform_attention_table,
)
from minitransformer.interpret.importance import (
    PruningCurve,
    ablation_importance,
    gradient_importance,
    importance_order,
    normalize_per_layer,
    pruning_curve,
    random_order,
)
from minitransformer.interpret.inputs import ModelInputs, model_inputs
from minitransformer.interpret.interventions import (
    Effect,
    ablate_heads,
    attention_permutation_effect,
    head_mask_without,
    intervention_effect,
    mean_ablation_patch,
    mean_head_outputs,
    patch_from,
    permute_attention_patch,
)
from minitransformer.interpret.objectives import (
    class_logit,
    classification_loss,
    embedding_cosine,
)
from minitransformer.interpret.rollout import (
    attention_flow,
    attention_rollout,
    max_flow,
    residual_attention,
)
from minitransformer.interpret.similarity import (
    classical_mds,
    cluster_heads,
    head_distances,
    head_names,
    js_divergence,
)
from minitransformer.interpret.stats import (
    HeadRole,
    HeadStatistics,
    RoleThresholds,
    attention_weights,
    head_roles,
    head_statistics,
    punctuation_ids,
    query_mask,
    roles_table,
)
from minitransformer.interpret.value_weighted import (
    transformed_value_norms,
    value_weighted_norms,
)

__all__ = [
    "Agreement",
    "DiagnosticThresholds",
    "Effect",
    "FLAGS",
    "Flag",
    "HeadRole",
    "HeadStatistics",
    "IGResult",
    "ModelInputs",
    "PruningCurve",
    "RANKING_METHODS",
    "RankingAgreement",
    "Report",
    "RoleThresholds",
    "TwinSeedResult",
    "UniformAttentionResult",
    "ablate_heads",
    "ablation_importance",
    "attention_flow",
    "attention_permutation_effect",
    "attention_rollout",
    "attention_weights",
    "class_logit",
    "classical_mds",
    "classification_loss",
    "cluster_heads",
    "compare_rankings",
    "diagnose",
    "embedding_cosine",
    "flagged_heads",
    "gradient_importance",
    "gradient_weighted_rollout",
    "gradient_x_input",
    "head_distances",
    "head_mask_without",
    "head_names",
    "head_roles",
    "head_statistics",
    "importance_order",
    "integrated_gradients",
    "intervention_effect",
    "js_divergence",
    "max_flow",
    "model_inputs",
    "mean_ablation_patch",
    "mean_head_outputs",
    "normalize_per_layer",
    "occlusion",
    "patch_from",
    "permute_attention_patch",
    "pruning_curve",
    "punctuation_ids",
    "query_mask",
    "random_order",
    "rank",
    "relevance_vs_occlusion",
    "residual_attention",
    "roles_table",
    "spearman",
    "spearman_or_nan",
    "train_with_uniform_attention",
    "transformed_value_norms",
    "twin_analysis",
    "twin_seeds_experiment",
    "twin_table",
    "uniform_attention",
    "uniform_attention_accuracy",
    "uniform_attention_experiment",
    "uniform_attention_patch",
    "uniform_attention_table",
    "value_weighted_norms",
]
