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
    ✓ softmax: all 6 checks passed
    True

A function that still raises the notebooks' ``NotImplementedError`` stub (its own, or that of
an earlier exercise it calls) is an exercise not done yet, not a mistake: the check prints one
line saying so and returns False, and a notebook run without answers goes on::

    >>> def softmax(x, axis=-1):
    ...     raise NotImplementedError("your code here")
    >>> check_softmax(softmax)  # doctest: +ELLIPSIS
    ○ softmax: not done yet. Replace the line `raise NotImplementedError(...)` with your code...
    False

The checks compare the answer with the right one and with what each known mistake would have
produced; the signature each check expects is in its docstring. Answers may be float32 or
float64: they must match to 1e-10 (relative and absolute) when inputs and output are float64,
to 1e-5 when either is float32. ``CheckFailed.mistake`` holds a short name of the diagnosed
mistake (e.g. ``"softmax_wrong_axis"``), for instructors' own tooling. In IPython a failed check
shows its message without the check's traceback.

The checks of the course, by notebook: 01 ``check_positional_encoding``; 02 ``check_softmax``,
``check_scaled_dot_product_attention`` (also 03, with masks); 04 ``check_multi_head_attention``;
05 ``check_layer_norm``, ``check_encoder_block``, ``check_bug_hunt``; 06 ``check_mirror_target``,
``check_pattern_score``; 07 ``check_offset_score``, ``check_same_token_mask``; 08
``check_rollout``, ``check_head_drop``, ``check_completeness_gap``; 09
``check_softmax_jacobian``, ``check_experiment_design``; 10 ``check_attention_on_padding``,
``check_off_by_one_prediction``, ``check_best_step``; 11 ``check_gradient_spikes``; 12 (in
:mod:`minitransformer.testing.backward`) ``check_softmax_backward``, ``check_attention_backward``,
``check_layer_norm_backward``, ``check_train_step``; 13 (in
:mod:`minitransformer.testing.decoder`) ``check_next_token_probs``, ``check_induction_score``.
"""

from minitransformer.testing.attention import check_scaled_dot_product_attention
from minitransformer.testing.checker import CheckFailed
from minitransformer.testing.design import (
    check_bug_hunt,
    check_experiment_design,
    check_off_by_one_prediction,
    mystery_block,
)
from minitransformer.testing.encoder_block import check_encoder_block
from minitransformer.testing.interpretability import (
    check_completeness_gap,
    check_head_drop,
    check_rollout,
)
from minitransformer.testing.layer_norm import check_layer_norm
from minitransformer.testing.multi_head import check_multi_head_attention
from minitransformer.testing.patterns import (
    check_attention_on_padding,
    check_mirror_target,
    check_offset_score,
    check_pattern_score,
    check_same_token_mask,
)
from minitransformer.testing.positional import check_positional_encoding
from minitransformer.testing.softmax import check_softmax, check_softmax_jacobian
from minitransformer.testing.training import check_best_step, check_gradient_spikes

__all__ = [
    "CheckFailed",
    "check_attention_on_padding",
    "check_best_step",
    "check_bug_hunt",
    "check_completeness_gap",
    "check_encoder_block",
    "check_experiment_design",
    "check_gradient_spikes",
    "check_head_drop",
    "check_layer_norm",
    "check_mirror_target",
    "check_multi_head_attention",
    "check_off_by_one_prediction",
    "check_offset_score",
    "check_pattern_score",
    "check_positional_encoding",
    "check_rollout",
    "check_same_token_mask",
    "check_scaled_dot_product_attention",
    "check_softmax",
    "check_softmax_jacobian",
    "mystery_block",
]
