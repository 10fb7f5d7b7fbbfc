"""viz: pictures of a minitransformer trace (matplotlib figures; nothing is recomputed).

>>> from viz import attention_heatmap
>>> fig = attention_heatmap(trace, layer=0, head=1, tokens=tokens)  # doctest: +SKIP
>>> fig.savefig("head.png")  # doctest: +SKIP
"""

from viz.heatmap import attention_heatmap, head_pattern

__all__ = ["attention_heatmap", "head_pattern"]
