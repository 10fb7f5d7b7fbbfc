"""The machinery every learner check shares.

A check runs the learner's function on a few small cases. For each case it knows the right
answer and what each classic mistake would have produced. The :class:`Checker` calls the
function safely (on copies of the inputs, so that it can tell whether they were modified),
checks the kind, dtype and shape of what came back, and compares the values: first with the
right answer, then with every known mistake. When the answer matches a mistake, the failure
names it; otherwise it shows the first entry that differs.

Tolerances depend on precision: ``1e-10`` (relative and absolute) when the case's inputs and
the learner's output are float64, ``1e-5`` when either is float32.

A learner's function that still raises the exercise stub's ``NotImplementedError`` is not a
failure: :func:`learner_check` makes the check print one line saying the exercise is not done
yet and return False, so that a notebook run without answers goes on past the exercise.
"""

from __future__ import annotations

import copy
import functools
import linecache
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

TOLERANCE_FLOAT64 = 1e-10
TOLERANCE_FLOAT32 = 1e-5
# A learner's version of a known mistake may compute it in another order or with a large
# finite number where we used -inf: match mistakes more loosely than the right answer.
MISTAKE_TOLERANCE_FLOAT64 = 1e-6
MISTAKE_TOLERANCE_FLOAT32 = 1e-4
SHOWN_ENTRIES = 6  # numbers shown per example row


class CheckFailed(AssertionError):
    """The learner's function gave a wrong answer; the message says why and shows an example.

    Attributes
    ----------
    mistake : str
        A short name of the diagnosed mistake, e.g. ``"softmax_wrong_axis"``, or
        ``"mismatch"`` when the answer is wrong in a way no known mistake explains.
    """

    def __init__(self, message: str, mistake: str):
        super().__init__(message)
        self.mistake = mistake

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the message alone.

        The frames of the check are of no use to a learner; the message names the mistake and,
        when their function raised, the line of their code that did.
        """
        first, *rest = str(self).splitlines()
        return [f"CheckFailed: {first}", *rest]


class NotWrittenYet(Exception):
    """Raised inside a check when the learner's function is still the exercise stub."""


def learner_check(check: Callable[..., bool]) -> Callable[..., bool]:
    """Make ``check`` report an unwritten exercise with one line and return False.

    A check raises :class:`CheckFailed` for a wrong answer (which stops a notebook's "Run All"
    where the learner must look), but an exercise not attempted yet is not an error: the line
    printed says so and the notebook runs on.
    """

    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> bool:
        try:
            return check(*args, **kwargs)
        except NotWrittenYet as stub:
            print(f"○ {stub}")
            return False

    return run


@dataclass(frozen=True)
class Mistake:
    """A classic mistake and what it would have produced on the current case.

    Attributes
    ----------
    name : str
        Short identifier, reported as :attr:`CheckFailed.mistake`.
    hint : str
        What the learner probably did and how to fix it, in a sentence or two.
    output : ndarray
        The answer this mistake gives on the case.
    """

    name: str
    hint: str
    output: np.ndarray


class Checker:
    """Runs one learner function through the cases of a check and explains any failure.

    Parameters
    ----------
    fn : callable
        The learner's function (or class, for checks of a callback).
    check : str
        What is checked, as in the check's name: ``"softmax"`` for ``check_softmax``. The
        learner's function is named in messages by its own name (``masked_attention``), or by
        this one when it has none (a lambda).
    verbose : bool
        Print a line for every case that passes, not just the final one.
    """

    def __init__(self, fn: Callable[..., Any], check: str, verbose: bool):
        if not callable(fn):
            raise TypeError(
                f"check_{check} expects your function itself, got a {type(fn).__name__}. "
                f"Pass the function without calling it: check_{check}({check}), "
                f"not check_{check}({check}(...))."
            )
        own_name = getattr(fn, "__name__", "")
        self.fn = fn
        self.check = check
        self.name = own_name if own_name.isidentifier() else check
        self.verbose = verbose
        # Where a stub's NotImplementedError may come from and still be this exercise's own:
        # the function itself, a lambda, or a method a check adds (a callback's on_step).
        self.own_names = {"", self.name, own_name}
        self.case_title = ""
        self.case_float32 = False
        self.n_cases = 0

    # ------------------------------------------------------------------------ cases
    @contextmanager
    def case(self, title: str, *, float32: bool = False) -> Iterator[None]:
        """Run the statements of one case; ``float32`` marks cases with float32 inputs."""
        self.case_title, self.case_float32 = title, float32
        self.n_cases += 1
        yield
        if self.verbose:
            print(f"  ✓ {title}")

    def passed(self) -> bool:
        """Announce success (one line) and return True."""
        passed = f"all {self.n_cases} checks passed" if self.n_cases > 1 else "the check passed"
        print(f"✓ {self.name}: {passed}")
        return True

    def fail(self, explanation: str, mistake: str) -> CheckFailed:
        """The exception to raise, its message headed by the function and case."""
        header = f"{self.name} check failed on case {self.n_cases} ({self.case_title}):"
        return CheckFailed(f"{header}\n{explanation}", mistake)

    # ---------------------------------------------------------------------- calling
    def call(
        self,
        args: dict[str, Any],
        kwargs: dict[str, Any] | None = None,
        *,
        error_hint: str = "",
        target: Callable[..., Any] | None = None,
    ) -> Any:
        """Call the learner's function on copies of the inputs and return what it returned.

        ``args`` are passed by position in their order, ``kwargs`` by keyword; the names of
        both are used in messages. ``target`` calls something of the learner's other than the
        checked function itself (a method of the object it built). Raises
        :class:`CheckFailed` if the function raises, or if it modified one of its inputs; an
        exercise stub's ``NotImplementedError`` raises :class:`NotWrittenYet`.
        """
        fn = self.fn if target is None else target
        kwargs = kwargs or {}
        inputs = {**args, **kwargs}
        given = copy.deepcopy(inputs)
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)  # overflow is diagnosed below
                result = fn(*(given[n] for n in args), **{n: given[n] for n in kwargs})
        except NotImplementedError as err:
            stub = _raising_function(err)
            if stub is None:  # raised inside a library, not by an exercise stub
                raise self._raised(err, args, kwargs, error_hint) from err
            if stub in self.own_names:
                raise NotWrittenYet(
                    f"{self.name}: not done yet. Replace the line `raise NotImplementedError(...)` "
                    "with your code, then run this cell again."
                ) from err
            raise NotWrittenYet(  # an earlier exercise that the learner's function calls
                f"{self.name}: not done yet. It calls `{stub}`, which still raises "
                "NotImplementedError: write that one first."
            ) from err
        except Exception as err:
            raise self._raised(err, args, kwargs, error_hint) from err
        for arg_name, original in inputs.items():
            if not _unchanged(original, given[arg_name]):
                what = " (a key or an array in it)" if isinstance(original, dict) else ""
                raise self.fail(
                    f"Your {self.name} changed its input `{arg_name}`{what}. An in-place "
                    "operation such as `x -= ...`, `x /= ...`, `np.exp(x, out=x)` or "
                    "`params.pop(...)` changes the caller's data. Compute into a new array "
                    "instead (`x = x - ...`).",
                    "mutated_input",
                )
        return result

    def _raised(
        self, err: Exception, args: dict[str, Any], kwargs: dict[str, Any], error_hint: str
    ) -> CheckFailed:
        """The failure for a function that raised ``err`` when called with ``args``, ``kwargs``."""
        return self.fail(
            f"Your {self.name} raised {type(err).__name__}: {err}\n"
            + _learner_line(err)
            + f"It was called as {self.describe_call(args, kwargs)}."
            + (f"\n{error_hint}" if error_hint else ""),
            "raised",
        )

    def describe_call(self, args: dict[str, Any], kwargs: dict[str, Any]) -> str:
        """``softmax(x, axis=0) with x of shape (3, 4)``: the call, in words."""
        parts = list(args) + [f"{n}={v!r}" for n, v in kwargs.items() if not _is_array(v)]
        parts += [f"{n}=<array>" for n, v in kwargs.items() if _is_array(v)]
        shapes = [f"{n} of shape {v.shape}" for n, v in {**args, **kwargs}.items() if _is_array(v)]
        described = f"{self.name}({', '.join(parts)})"  # the learner's function's own name
        return described + (f" with {', '.join(shapes)}" if shapes else "")

    # ----------------------------------------------------------------- the answer
    def array(self, result: Any, what: str = "output", *, kinds: str = "f") -> np.ndarray:
        """Check that ``result`` is an ndarray of an accepted dtype kind and return it.

        ``kinds`` lists the accepted ``dtype.kind`` letters: ``"f"`` floating point (the
        default), ``"b"`` bool, ``"fiub"`` any number or bool (returned as float64).
        """
        if result is None:
            raise self.fail(
                f"Your {self.name} returned None. Did you forget the `return` statement?",
                "returned_none",
            )
        if isinstance(result, (list, tuple)):
            kind = type(result).__name__
            raise self.fail(
                f"Your {self.name} returned a {kind} as its {what}; return a NumPy array "
                f"instead (`np.array(...)`, or keep the computation in arrays: list "
                "comprehensions and `.tolist()` turn arrays into lists).",
                "returned_list",
            )
        if isinstance(result, np.generic):  # a NumPy scalar: an array of shape ()
            result = np.asarray(result)
        if not isinstance(result, np.ndarray):
            raise self.fail(
                f"Your {self.name} returned a {type(result).__name__} as its {what}; "
                "return a NumPy array.",
                "not_an_array",
            )
        if kinds == "b":
            if result.dtype.kind == "b":
                return result
            raise self.fail(
                f"Your {self.name} returned an array of dtype {result.dtype} as its {what}; "
                "return a bool array (True/False): comparisons such as `a == b` give bools, "
                "combine them with `&`, `|` and `~` (multiplying or `.astype(int)` turns them "
                "into numbers).",
                "wrong_dtype",
            )
        if kinds == "fiub" and result.dtype.kind in "fiub":
            return result.astype(np.float64)
        if result.dtype.kind != "f":
            raise self.fail(
                f"Your {self.name} returned an array of dtype {result.dtype} as its {what}; "
                "it should hold floating-point numbers (float32 or float64). An integer "
                "array truncates every value towards 0: create arrays with a float dtype, "
                "e.g. `np.zeros(shape)` (float64 by default) rather than "
                "`np.zeros(shape, dtype=int)`, and `np.arange(n, dtype=float)`.",
                "integer_dtype" if result.dtype.kind in "iub" else "wrong_dtype",
            )
        if result.dtype == np.float16:
            raise self.fail(
                f"Your {self.name} returned float16 numbers, too coarse (3 digits) to check; "
                "use float32 or float64.",
                "wrong_dtype",
            )
        return result

    def number(self, result: Any, what: str = "output") -> np.ndarray:
        """Check that ``result`` is one number (a float, or an array of shape ()) and return it
        as a float64 array of shape (), ready for :meth:`compare`."""
        if isinstance(result, np.ndarray) and result.shape != ():
            raise self.fail(
                f"Your {self.name} returned an array of shape {result.shape} as its {what}; "
                "it should be one number. Did you average over some axes but not all "
                "(`.mean()` with no axis averages everything)?",
                "wrong_shape",
            )
        if isinstance(result, (bool, np.bool_)) or not isinstance(
            result, (int, float, np.integer, np.floating, np.ndarray)
        ):
            raise self.fail(
                f"Your {self.name} returned a {type(result).__name__} as its {what}; it "
                "should be a number (a Python float, or a NumPy scalar).",
                "not_a_number",
            )
        return np.asarray(result, dtype=np.float64)

    def compare(
        self,
        got: np.ndarray,
        expected: np.ndarray,
        mistakes: Sequence[Mistake] = (),
        *,
        what: str = "output",
        shape_hints: dict[tuple[int, ...], str] | None = None,
        nonfinite_hint: str = "",
        diagnose: Callable[[], tuple[str, str] | None] | None = None,
    ) -> None:
        """Pass if ``got`` equals ``expected`` within tolerance; otherwise explain.

        The order of the diagnosis: a known mistake whose output matches (of any shape), then
        a wrong shape (with ``shape_hints`` for telling shapes), then ``diagnose()`` (a check's
        own search for the first wrong step, returning ``(explanation, mistake name)`` or
        None), then NaN or infinity where finite values were expected (with
        ``nonfinite_hint``), then a generic report of the first entry that differs.
        """
        if got.dtype.kind == "b" or expected.dtype.kind == "b":  # compare bools as 0 and 1
            got, expected = got.astype(np.float64), expected.astype(np.float64)
            mistakes = [Mistake(m.name, m.hint, m.output.astype(np.float64)) for m in mistakes]
        float32 = self.case_float32 or got.dtype != np.float64
        tol = TOLERANCE_FLOAT32 if float32 else TOLERANCE_FLOAT64
        if got.shape == expected.shape and np.allclose(got, expected, rtol=tol, atol=tol):
            return
        mistake_tol = MISTAKE_TOLERANCE_FLOAT32 if float32 else MISTAKE_TOLERANCE_FLOAT64
        for m in mistakes:  # a mistake may change the shape too (a list one entry too long)
            if m.output.shape == got.shape and np.allclose(
                got, m.output, rtol=mistake_tol, atol=mistake_tol, equal_nan=True
            ):
                raise self.fail(m.hint + "\n" + example(expected, got, what), m.name)
        if got.shape != expected.shape:
            raise self.fail(
                f"Your {what} has shape {got.shape}, expected {expected.shape}. "
                + _shape_hint(got.shape, expected.shape, shape_hints or {}),
                "wrong_shape",
            )
        found = diagnose() if diagnose is not None else None
        if found is not None:
            raise self.fail(*found)
        if not np.isfinite(got).all():
            n_bad = int((~np.isfinite(got)).sum())
            raise self.fail(
                f"Your {what} contains {n_bad} NaN or infinite value(s) where finite numbers "
                "were expected. " + nonfinite_hint + "\n" + example(expected, got, what),
                "not_finite",
            )
        if np.allclose(got, expected, rtol=1e-3, atol=1e-3):
            gap = float(np.abs(got - expected).max())
            raise self.fail(
                f"Your {what} is close to the expected one but not within the tolerance "
                f"{tol:g} (largest difference {gap:.2g}). Is some step computed in float32, "
                "with another epsilon, or with an approximation?\n" + example(expected, got, what),
                "imprecise",
            )
        raise self.fail(
            f"Your {what} differs from the expected one; this does not look like any of "
            "the classic mistakes this check knows, so compare the two step by step.\n"
            + example(expected, got, what),
            "mismatch",
        )


# --------------------------------------------------------------------------- helpers


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray)


def _raising_function(err: NotImplementedError) -> str | None:
    """Name of the function whose ``raise NotImplementedError`` stopped the learner's code.

    The innermost frame of the traceback is the stub (the learner's function itself, or one of
    their earlier exercises it calls). ``""`` when that frame has no usable name (a lambda),
    None when the error came from inside NumPy rather than from the learner's code.
    """
    tb = err.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    if str(frame.f_globals.get("__name__", "")).split(".")[0] == "numpy":
        return None
    name = frame.f_code.co_name
    return name if name.isidentifier() else ""


def _learner_line(err: Exception) -> str:
    """``In your code, line 4: scores = q @ k.T``: the learner's line that raised, if known.

    The innermost frame outside NumPy and this package is the learner's (a notebook cell or
    their own module); empty when there is none (the error came from our own code).
    """
    line = ""
    for frame, lineno in traceback.walk_tb(err.__traceback__):
        module = str(frame.f_globals.get("__name__", "")).split(".")[0]
        if module not in ("numpy", "minitransformer"):
            source = linecache.getline(frame.f_code.co_filename, lineno, frame.f_globals).strip()
            line = f"In your code, line {lineno}: {source}\n" if source else line
    return line


def _unchanged(original: Any, after: Any) -> bool:
    """Whether the learner left an input (an array, or a dict of arrays) as it was."""
    if isinstance(original, np.ndarray):
        return (
            isinstance(after, np.ndarray)
            and after.shape == original.shape
            and np.array_equal(after, original, equal_nan=True)
        )
    if isinstance(original, dict):
        return (
            isinstance(after, dict)
            and after.keys() == original.keys()
            and all(_unchanged(original[k], after[k]) for k in original)
        )
    return True


def _shape_hint(
    got: tuple[int, ...], expected: tuple[int, ...], hints: dict[tuple[int, ...], str]
) -> str:
    """A sentence about how the shapes differ, from the case's hints or general patterns."""
    if got in hints:
        return hints[got]
    if len(got) == len(expected) and all(g in (1, e) for g, e in zip(got, expected, strict=True)):
        return (
            "Where you have size 1 the expected output has more: did you return a reduction "
            "(a sum, max or mean with keepdims=True) instead of the full array?"
        )
    if tuple(n for n in got if n != 1) == tuple(n for n in expected if n != 1):
        return "You have extra (or missing) axes of size 1: check keepdims and reshapes."
    if sorted(got) == sorted(expected):
        return "The sizes are right but in the wrong order: is an axis transposed?"
    if len(got) > len(expected):
        return (
            "You have extra axes. Note that `np.dot` on arrays with more than 2 axes is not "
            "a batched product: use `@` (np.matmul)."
        )
    return ""


def _fmt(values: np.ndarray) -> str:
    """A few numbers, rounded: ``[0.09 0.245 0.665 ...]``."""
    shown = values[:SHOWN_ENTRIES]
    text = np.array2string(shown, precision=3, suppress_small=True, separator=" ")
    return text[:-1] + " ...]" if values.size > SHOWN_ENTRIES else text


def example(expected: np.ndarray, got: np.ndarray, what: str = "output") -> str:
    """The row (slice along the last axis) holding the first entry that differs most clearly.

    Returns e.g. ``Example, output[0, :]: expected [0.09 0.245 0.665], got [0.333 ...]``; for
    a single number, ``Expected 0.192, got 0.055``.
    """
    if expected.ndim == 0:
        return f"Expected {float(expected):.4g}, got {float(got):.4g}."
    if got.shape != expected.shape:
        return f"Expected {_fmt(expected.ravel())}, got {_fmt(got.ravel())}"
    with np.errstate(invalid="ignore"):
        differs = ~np.isclose(got, expected, rtol=1e-6, atol=1e-6)
    flat = int(np.argmax(differs)) if differs.any() else 0
    index = np.unravel_index(flat, expected.shape)
    row = index[:-1]
    where = ", ".join([str(int(i)) for i in row] + [":"])
    start = max(0, int(index[-1]) - SHOWN_ENTRIES // 2) if expected.shape[-1] > SHOWN_ENTRIES else 0
    cols = "" if start == 0 else f" (from column {start})"
    return (
        f"Example, {what}[{where}]{cols}: expected {_fmt(expected[row][start:])}, "
        f"got {_fmt(got[row][start:])}"
    )
