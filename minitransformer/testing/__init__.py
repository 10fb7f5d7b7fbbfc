"""Learner checks: run a student's function on cases built to expose the classic mistakes.

Each check takes the learner's function, runs it on small inputs, and either prints a line
with ✓ and returns True, or raises :class:`CheckFailed` (an ``AssertionError``) whose message
names the likely mistake and shows a few expected and received numbers::

    >>> import numpy as np
    >>> from minitransformer.testing import check_softmax
    >>> def softmax(x, axis=-1):
    ...     e = np.exp(x - x.max(axis=axis, keepdims=True))
    ...     return e / e.sum(axis=axis, keepdims=True)
    >>> check_softmax(softmax)
    ✓ softmax: all 5 checks passed
    True

The checks compare the answer with the right one and with what each known mistake would have
produced; the signature each check expects is in its docstring. Answers may be float32 or
float64: they must match to 1e-10 (relative and absolute) when inputs and output are float64,
to 1e-5 when either is float32. ``CheckFailed.mistake`` holds a short name of the diagnosed
mistake (e.g. ``"softmax_wrong_axis"``), for instructors' own tooling. A function that still
raises the notebooks' ``NotImplementedError`` stub (its own, or that of an earlier exercise it
calls) is reported as not written yet (``"not_implemented"``), not diagnosed.
"""

from minitransformer.testing.attention import check_scaled_dot_product_attention
from minitransformer.testing.checker import CheckFailed
from minitransformer.testing.encoder_block import check_encoder_block
from minitransformer.testing.layer_norm import check_layer_norm
from minitransformer.testing.multi_head import check_multi_head_attention
from minitransformer.testing.positional import check_positional_encoding
from minitransformer.testing.softmax import check_softmax

__all__ = [
    "CheckFailed",
    "check_encoder_block",
    "check_layer_norm",
    "check_multi_head_attention",
    "check_positional_encoding",
    "check_scaled_dot_product_attention",
    "check_softmax",
]
