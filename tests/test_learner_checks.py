"""The machinery of the learner checks: how they report, name, and look inside.

The catalogue of mistakes each check must name is ``tests/test_check_catalogue.py``; this file
tests what all checks share: an unwritten exercise reported in one line (so a notebook run
without answers goes on), messages that name the learner's own function and the line that
raised, a short display in IPython, and the recorded parameters behind the step-by-step
diagnosis of an encoder block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from learner_code import (
    encoder_block_via_encoder,
    make_block,
    my_attention,
    my_softmax,
    softmax_axis0,
)

import minitransformer.testing as testing
from minitransformer.functional import linear, softmax
from minitransformer.testing import (
    CheckFailed,
    check_bug_hunt,
    check_encoder_block,
    check_experiment_design,
    check_gradient_spikes,
    check_off_by_one_prediction,
    check_scaled_dot_product_attention,
    check_softmax,
)
from minitransformer.testing.encoder_block import block_steps, block_variant, random_block_params
from minitransformer.testing.recording import Recorded, Recording

# Every check that takes a function, with the stub of an exercise not done yet.
FUNCTION_CHECKS: dict[str, Callable[..., bool]] = {
    name: getattr(testing, name)
    for name in testing.__all__
    if name.startswith("check_")
    and name not in ("check_bug_hunt", "check_experiment_design", "check_off_by_one_prediction")
}


def not_written_yet(*args, **kwargs):
    raise NotImplementedError("your code here")  # the exercise stub of the notebooks


class GradientSpikesStub:
    def __init__(self, threshold):
        self.threshold = threshold
        self.steps = []

    def on_step(self, step, model, classifier, history):
        raise NotImplementedError("your code here")


@pytest.mark.parametrize("check", FUNCTION_CHECKS)
def test_an_unwritten_exercise_prints_one_line_and_returns_false(check: str, capsys):
    stub = GradientSpikesStub if check == "check_gradient_spikes" else not_written_yet
    assert FUNCTION_CHECKS[check](stub) is False
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1, printed
    assert printed.startswith("○ ") and "not done yet" in printed, printed
    assert "raise NotImplementedError(...)" in printed


def test_an_unanswered_design_exercise_prints_one_line_and_returns_false(capsys):
    from minitransformer import EncoderConfig

    assert check_bug_hunt(None) is False
    assert check_experiment_design(None, None, EncoderConfig()) is False
    assert check_experiment_design({"a": {}, "b": {}}, None, EncoderConfig()) is False
    assert check_off_by_one_prediction(None, None, None) is False
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all("not done yet" in line for line in lines), lines


def test_an_unwritten_earlier_exercise_is_named(capsys):
    def softmax(x, axis=-1):
        raise NotImplementedError("your code here")

    def scaled_dot_product_attention(q, k, v):
        weights = softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]))
        return weights @ v, weights

    assert check_scaled_dot_product_attention(scaled_dot_product_attention, masked=False) is False
    assert capsys.readouterr().out == (
        "○ scaled_dot_product_attention: not done yet. It calls `softmax`, which still raises "
        "NotImplementedError: write that one first.\n"
    )
    assert check_softmax(lambda x, axis=-1: softmax(x, axis)) is False  # named by the check
    assert capsys.readouterr().out.startswith("○ softmax: not done yet.")


def test_a_not_implemented_error_from_numpy_is_not_a_stub():
    namespace: dict[str, Any] = {"__name__": "numpy.somewhere"}  # a function NumPy would own
    exec("def unsupported(x):\n    raise NotImplementedError('not for this dtype')", namespace)

    def softmax(x, axis=-1):
        return namespace["unsupported"](x)

    with pytest.raises(CheckFailed) as failure:
        check_softmax(softmax)
    assert failure.value.mistake == "raised"
    assert "not for this dtype" in str(failure.value)


def test_messages_name_the_learners_own_function():
    def masked_attention(q, k, v):  # notebook 03's name, no mask argument yet
        return my_attention(q, k, v)

    with pytest.raises(CheckFailed) as failure:
        check_scaled_dot_product_attention(masked_attention)
    message = str(failure.value)
    assert failure.value.mistake == "no_mask_argument"
    assert message.startswith("masked_attention check failed on case 3")
    assert "`def masked_attention(q, k, v, mask=None):`" in message
    assert "`check_scaled_dot_product_attention(masked_attention, masked=False)`" in message
    assert "scaled_dot_product_attention check" not in message


def test_an_error_names_the_learners_line():
    def softmax(x, axis=-1):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdim=True)  # a typo: TypeError

    with pytest.raises(CheckFailed) as failure:
        check_softmax(softmax)
    message = str(failure.value)
    assert failure.value.mistake == "raised"
    assert "In your code, line" in message
    assert "return e / e.sum(axis=axis, keepdim=True)" in message


def test_ipython_shows_the_message_without_the_checks_traceback():
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    shell.user_ns.update(check_softmax=check_softmax, wrong=softmax_axis0)
    with capture_output() as captured:
        shell.run_cell("check_softmax(wrong)")
    shown = captured.stdout + captured.stderr
    assert "CheckFailed: softmax_axis0 check failed on case 1" in shown
    assert "axis=0" in shown  # the diagnosis
    assert "checker.py" not in shown and "Traceback" not in shown
    assert len(shown.splitlines()) <= 4


def test_attention_check_without_masks(capsys):
    """masked=False: a mask-less function passes, and is still checked for the scaling."""

    def attention(q, k, v):  # takes no mask at all, as in notebook 02
        return my_attention(q, k, v)

    def unscaled(q, k, v):
        weights = my_softmax(q @ np.swapaxes(k, -1, -2))
        return weights @ v, weights

    assert check_scaled_dot_product_attention(attention, masked=False) is True
    assert capsys.readouterr().out == "✓ attention: all 3 checks passed\n"
    with pytest.raises(CheckFailed) as failure:
        check_scaled_dot_product_attention(unscaled, masked=False)
    assert failure.value.mistake == "no_scaling"


def test_verbose_prints_every_case(capsys):
    check_softmax(softmax, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and all("✓" in line for line in lines)
    assert lines[-1] == "✓ softmax: all 6 checks passed"


def test_one_case_is_one_check(capsys):
    check_bug_hunt("resid_post")
    assert capsys.readouterr().out == "✓ first_wrong: the check passed\n"


def test_message_shows_expected_and_received_numbers():
    with pytest.raises(CheckFailed) as failure:
        check_softmax(softmax_axis0)
    message = str(failure.value)
    assert message.startswith("softmax_axis0 check failed on case 1")
    assert "Example, output[" in message and "expected [" in message and "got [" in message
    expected_row = np.round(softmax(np.array([1.0, 2.0, 3.0, 0.5])), 3)
    assert f"{expected_row[0]:.3f}".rstrip("0") in message


def test_the_large_spread_softmax_case_is_what_the_issue_reported():
    """A softmax that subtracts the row minimum is NaN on [[0, 1000], [-1e9, 0]]."""

    def softmax_min(x, axis=-1):
        e = np.exp(x - x.min(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    with np.errstate(all="ignore"):
        assert np.isnan(softmax_min(np.array([[0.0, 1000.0], [-1e9, 0.0]]))).any()
    with pytest.raises(CheckFailed) as failure:
        check_softmax(softmax_min)
    assert failure.value.mistake == "softmax_min_subtraction"


@pytest.mark.parametrize(("norm", "activation"), [("pre", "gelu"), ("post", "gelu_tanh")])
def test_block_options(norm: str, activation: str):
    def ours(x, params, n_heads, mask=None):
        return encoder_block_via_encoder(x, params, n_heads, mask, norm, activation)

    assert check_encoder_block(ours, norm=norm, activation=activation)
    with pytest.raises(CheckFailed):  # the default block is not this one
        check_encoder_block(ours)


def test_a_pre_norm_block_is_compared_step_by_step():
    def pre_norm_block(x, params, n_heads, mask=None):
        return make_block(pre_norm=True, act="gelu")(x, params, n_heads, mask)

    assert check_encoder_block(pre_norm_block, norm="pre", activation="gelu")

    def pre_norm_no_ln2_bias(x, params, n_heads, mask=None):
        p = {**params, "ln2.beta": 0.0}  # LN2 = gamma * x_hat, no shift
        return make_block(pre_norm=True, act="gelu")(x, p, n_heads, mask)

    with pytest.raises(CheckFailed) as failure:
        check_encoder_block(pre_norm_no_ln2_bias, norm="pre", activation="gelu")
    assert failure.value.mistake == "unused_parameter"
    assert "`ln2.beta`" in str(failure.value)


def test_block_steps_match_the_encoder():
    rng = np.random.default_rng(0)
    x, p = rng.normal(size=(2, 5, 12)), random_block_params(rng, 12, 20)
    mask = np.array([[True] * 5, [True] * 3 + [False] * 2])[:, None, None, :]
    for norm, activation in [("post", "relu"), ("pre", "gelu")]:
        expected = encoder_block_via_encoder(x, p, 3, mask, norm, activation)
        ours = block_steps(x, p, 3, mask, norm, activation, 1e-5)["out"]
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            block_variant(x, p, 3, mask, norm, activation, 1e-5), expected, atol=1e-12
        )


def test_recorded_parameters_note_what_they_are_combined_with():
    recording = Recording()
    p = recording.wrap({"W": np.arange(6.0).reshape(3, 2), "b": np.ones(2), "g": np.ones(2)})
    x = np.ones((4, 3))
    y = linear(x, p["W"], p["b"])  # (x.reshape(-1, 3) @ W) then y += b
    assert type(y) is np.ndarray  # the learner's results are plain arrays
    np.testing.assert_array_equal(recording.operand("W", ("matmul",)), x)
    np.testing.assert_array_equal(
        recording.operand("b", ("add",)), x @ np.arange(6.0).reshape(3, 2)
    )
    assert isinstance(p["W"].T, Recorded) and p["W"].T.name == "W"  # views stay recorded
    assert all(part.name == "W" for part in np.split(p["W"], 2, axis=1))
    np.zeros_like(p["g"]) + 1.0  # a new array shaped like g is not g
    assert recording.used() == {"W", "b"}
    np.einsum("ij,jk->ik", x, p["W"])
    assert recording.uses[-1].op == "einsum"


def test_docstring_examples():
    import doctest

    import minitransformer.testing.softmax as softmax_module

    for module in (testing, softmax_module):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted >= 2


def test_passing_the_result_instead_of_the_function():
    with pytest.raises(TypeError, match=r"check_softmax\(softmax\)"):
        check_softmax(softmax(np.ones(3)))  # type: ignore[arg-type]


def test_bad_options_of_the_block_check():
    with pytest.raises(ValueError, match="norm"):
        check_encoder_block(make_block(), norm="middle")
    with pytest.raises(ValueError, match="activation"):
        check_encoder_block(make_block(), activation="tanh")


def test_a_callback_check_drives_the_callback_like_train():
    seen: list[tuple[int, int]] = []

    class Watcher:
        def __init__(self, threshold: float):
            self.steps: list[int] = []

        def on_step(self, step: int, model: Any, classifier: Any, history: Any) -> None:
            seen.append((step, len(history.grad_norm)))
            if step > 0 and history.grad_norm[-1] > 1.0:
                self.steps.append(step)

    assert check_gradient_spikes(Watcher)
    assert seen[:3] == [(0, 0), (1, 1), (2, 2)]  # step s sees s gradient norms, step 0 none
