"""viz: pictures of a minitransformer trace (matplotlib figures; nothing is recomputed).

>>> from viz import attention_heatmap
>>> fig = attention_heatmap(trace, layer=0, head=1, tokens=tokens)  # doctest: +SKIP
>>> fig.savefig("head.png")  # doctest: +SKIP
"""

from viz.architecture import architecture_diagram
from viz.explorer import Explorer, explore
from viz.head_view import head_view
from viz.heatmap import attention_heads, attention_heatmap, head_weights
from viz.html_export import to_html
from viz.interpret import (
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
from viz.model_view import model_view
from viz.multihead import head_contributions, multihead_anatomy
from viz.notebook import show_figures_in_notebooks
from viz.positional import positional_encoding
from viz.qk_space import qk_projection, qk_space
from viz.query import query_breakdown
from viz.residual import contribution_sizes, residual_norms
from viz.steps import attention_step_frames, attention_steps, save_frames
from viz.training import animate_attention, attention_over_training

show_figures_in_notebooks()  # a Figure as a cell's last expression shows as a picture

__all__ = [
    "Explorer",
    "animate_attention",
    "architecture_diagram",
    "attention_heads",
    "attention_heatmap",
    "attention_over_training",
    "attention_step_frames",
    "attention_steps",
    "contribution_sizes",
    "diagnostics_figure",
    "explore",
    "head_contributions",
    "head_similarity_figure",
    "head_statistics_figure",
    "head_weights",
    "head_view",
    "model_view",
    "multihead_anatomy",
    "permutation_figure",
    "positional_encoding",
    "pruning_curves_figure",
    "qk_projection",
    "qk_space",
    "query_breakdown",
    "ranking_agreement_figure",
    "relevance_maps_figure",
    "residual_norms",
    "save_frames",
    "to_html",
    "token_scores_figure",
    "twin_seeds_figure",
    "uniform_attention_figure",
]
