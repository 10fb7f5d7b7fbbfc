"""Parameters that write down what the learner's code combines them with.

A block's output says only *that* something is wrong. To say *where*, a check hands the
learner's function parameters wrapped in :class:`Recorded`: an ndarray that, whenever it takes
part in ``@``, ``*`` or ``+`` (or ``np.dot``, ``np.einsum``, ...), notes which parameter it was
and a copy of the other operand. ``x @ W_1`` then tells the check what the learner fed into the
feed-forward layer, ``normed * gamma`` what their layer norm normalised: exactly the
intermediates a trace records, which the check compares one by one with the right ones.

The arithmetic itself runs on plain arrays, so the learner's results are unchanged (and plain).
Views of a parameter (``W.T``, ``W[:, :4]``, ``W.reshape(...)``) stay recorded; a copy made
with ``np.array(W)`` does not, and then that parameter is simply not observed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minitransformer.testing.checker import example

# Operations whose other operand is an intermediate worth recording.
_COMBINING_UFUNCS = {"matmul", "multiply", "add"}
_COMBINING_FUNCTIONS = {"dot", "einsum", "tensordot", "inner", "matmul"}
# Functions that only rearrange one parameter's numbers: their result is still that parameter.
_REARRANGING_FUNCTIONS = {
    "transpose", "swapaxes", "moveaxis", "reshape", "ravel", "squeeze", "expand_dims",
    "split", "array_split", "hsplit", "vsplit", "broadcast_to", "copy", "flip",
    "atleast_1d", "atleast_2d", "atleast_3d",
}  # fmt: skip


@dataclass
class Use:
    """One operation a parameter took part in.

    Attributes
    ----------
    param : str
        The parameter's name, e.g. ``"ffn.W_1"``.
    op : str
        ``"matmul"``, ``"multiply"``, ``"add"``, ``"dot"``, ``"einsum"``, ...
    operand : ndarray or None
        A copy of the other operand, or None when there was not exactly one.
    """

    param: str
    op: str
    operand: np.ndarray | None


@dataclass
class Recording:
    """Every :class:`Use` of the recorded parameters, in the order they happened."""

    uses: list[Use] = field(default_factory=list)

    def wrap(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The same parameters, each wrapped so that its uses are recorded here."""
        return {name: Recorded(value, name, self) for name, value in params.items()}

    def used(self) -> set[str]:
        """Names of the parameters that took part in at least one operation."""
        return {use.param for use in self.uses}

    def operand(self, param: str, ops: Iterable[str]) -> np.ndarray | None:
        """The other operand of ``param``'s first use in one of ``ops`` (None if never)."""
        for use in self.uses:
            if use.param == param and use.op in ops and use.operand is not None:
                return use.operand
        return None


class Recorded(np.ndarray):
    """An ndarray that reports the operations it takes part in to a :class:`Recording`."""

    name: str | None
    recording: Recording | None

    def __new__(cls, value: np.ndarray, name: str, recording: Recording) -> Recorded:
        array = np.asarray(value).view(cls)
        array.name, array.recording = name, recording
        return array

    def __array_finalize__(self, obj: Any) -> None:
        # Views and copies (W.T, W[:4], W.copy(), deepcopy) keep the name and the recording.
        self.name = getattr(obj, "name", None)
        self.recording = getattr(obj, "recording", None)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method == "__call__" and ufunc.__name__ in _COMBINING_UFUNCS:
            _note(ufunc.__name__, inputs)
        if "out" in kwargs:  # in place (y += b): compute into the plain view of each output
            kwargs["out"] = tuple(_plain(o) for o in kwargs["out"])
        return getattr(ufunc, method)(*(_plain(i) for i in inputs), **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        arrays = [a for a in _flatten(args) if isinstance(a, np.ndarray)]
        if func.__name__ in _COMBINING_FUNCTIONS:
            _note(func.__name__, arrays)
        result = func(*_plain(args), **_plain(kwargs))
        names = {a.name for a in arrays if isinstance(a, Recorded)}
        if func.__name__ in _REARRANGING_FUNCTIONS and len(names) == 1:
            # np.split(W, ...), np.transpose(W), ... of one parameter: still that parameter.
            source = next(a for a in arrays if isinstance(a, Recorded))
            return _rewrap(result, source)
        return result


def _note(op: str, operands: Iterable[Any]) -> None:
    """Record a use for every recorded parameter among ``operands``."""
    operands = list(operands)
    for i, a in enumerate(operands):
        if isinstance(a, Recorded) and a.recording is not None and a.name is not None:
            others = [o for j, o in enumerate(operands) if j != i]
            other = others[0] if len(others) == 1 else None
            copy = np.array(_plain(other)) if isinstance(other, np.ndarray) else None
            a.recording.uses.append(Use(a.name, op, copy))


def _plain(value: Any) -> Any:
    """``value`` with every :class:`Recorded` replaced by a plain ndarray view (recursively)."""
    if isinstance(value, Recorded):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [item for v in value for item in _flatten(v)]
    return [value]


def _rewrap(result: Any, source: Recorded) -> Any:
    if isinstance(result, np.ndarray) and result.dtype.kind == "f":
        return Recorded(result, source.name or "", source.recording or Recording())
    if isinstance(result, (list, tuple)):
        return type(result)(_rewrap(r, source) for r in result)
    return result


# ------------------------------------------------------------------ comparing step by step


@dataclass
class Step:
    """One intermediate of the right computation, and where the learner's is observed.

    Attributes
    ----------
    where : str
        The sub-layer and what is observed, e.g. "the feed-forward layer's input (what
        multiplies ffn.W_1)".
    param : str
        The parameter whose other operand is the learner's intermediate.
    ops : tuple of str
        The operations observed (``("matmul", "dot", "einsum", ...)``).
    expected : list of ndarray
        Right values (several when code may legitimately record different ones: ``gamma *
        x_hat`` and ``gamma * (x - mean) / std`` both pass, with the normalised or the centred
        vector).
    formula : str
        What the expected value is, e.g. ``"h = LN1(x + MHA(x))"``.
    lookalikes : list of (str, ndarray)
        What a classic mistake would have there, each with a sentence naming it.
    """

    where: str
    param: str
    ops: tuple[str, ...]
    expected: list[np.ndarray]
    formula: str
    lookalikes: list[tuple[str, np.ndarray]] = field(default_factory=list)


MATMUL_OPS = ("matmul", "dot", "einsum", "tensordot", "inner")


def first_wrong_step(recording: Recording, steps: list[Step], tol: float) -> tuple[str, str] | None:
    """``(explanation, mistake name)`` for the first observed step that differs, or None.

    Steps are given in the order the data flows through them; a step the learner's code never
    showed (a parameter it copied away, or an operand of another shape) is skipped.
    """
    for step in steps:
        seen = recording.operand(step.param, step.ops)
        if seen is None or seen.size != step.expected[0].size:
            continue
        seen = seen.reshape(step.expected[0].shape)
        if any(np.allclose(seen, e, rtol=tol, atol=tol) for e in step.expected):
            continue
        named = [
            sentence
            for sentence, value in step.lookalikes
            if np.allclose(seen, value, rtol=tol, atol=tol, equal_nan=True)
        ]
        return (
            f"The first step of yours that differs is {step.where}: expected {step.formula}"
            + (f"; yours is {named[0]}" if named else "")
            + ".\n"
            + example(step.expected[0], seen, "the intermediate"),
            "wrong_step",
        )
    return None


def unused_parameters(
    recording: Recording, names: Iterable[str], roles: dict[str, str], who: str
) -> tuple[str, str] | None:
    """``(explanation, mistake name)`` naming parameters the learner's code never used.

    ``who`` names the learner's function. Said only when most parameters were seen in use:
    code that copies its parameters away (``np.array(W)``) hides all of them, and then nothing
    is claimed.
    """
    names = list(names)
    unused = [n for n in names if n not in recording.used()]
    if not unused or len(unused) > len(names) // 2:
        return None
    listed = ", ".join(f"`{n}`" for n in unused)
    why = " ".join(dict.fromkeys(roles[n] for n in unused if n in roles))
    return (
        f"Your {who} never uses {listed}. {why}".rstrip(),
        "unused_parameter",
    )
