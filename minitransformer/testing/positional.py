"""``check_positional_encoding``: sines and cosines, in the right columns, at the right rates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.positional import sinusoidal_positional_encoding
from minitransformer.testing.checker import Checker, Mistake, learner_check

FORMULA = "PE[pos, 2i] = sin(pos / 10000^(2i/d_model)), PE[pos, 2i+1] = cos(the same angle)"


def positional_variant(
    max_len: int,
    d_model: int,
    *,
    base: float = 10000.0,
    layout: str = "interleaved",
    exponent: str = "pair",
    start: int = 0,
) -> np.ndarray:
    """The sinusoidal table with switches that reproduce classic mistakes; defaults are right.

    ``layout`` is ``"interleaved"`` (right: sin in even columns, cos in odd), ``"cos_first"``
    (cos in even, sin in odd), ``"concatenated"`` (all sines, then all cosines), ``"sin_only"``
    or ``"cos_only"`` (the same function in both columns of a pair);
    ``exponent`` gives column j the frequency ``base^-(e)`` with e = ``2*(j//2)/d_model``
    (``"pair"``, right), ``j/d_model`` (``"column"``), ``2*j/d_model`` (``"double"``) or
    ``(j//2)/d_model`` (``"half"``: the 2 of 2i forgotten);
    ``start`` is the first position.
    """
    pos = np.arange(start, start + max_len, dtype=np.float64)[:, None]  # (max_len, 1)
    j = np.arange(d_model)
    if layout == "concatenated":
        angle = pos / base ** (2 * np.arange(d_model // 2) / d_model)  # (max_len, D/2)
        return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)
    e = {
        "pair": 2 * (j // 2) / d_model,
        "column": j / d_model,
        "double": 2 * j / d_model,
        "half": (j // 2) / d_model,
    }
    angle = pos / base ** e[exponent]  # (max_len, D)
    even = j % 2 == 0
    if layout in ("sin_only", "cos_only"):
        return np.sin(angle) if layout == "sin_only" else np.cos(angle)
    if layout == "cos_first":
        return np.where(even, np.cos(angle), np.sin(angle))
    return np.where(even, np.sin(angle), np.cos(angle))


def _mistakes(max_len: int, d_model: int) -> list[Mistake]:
    def table(**settings: Any) -> np.ndarray:
        return positional_variant(max_len, d_model, **settings)

    return [
        Mistake(
            "pe_concatenated",
            "Your table puts all the sines first and all the cosines after (concatenated "
            "halves, as some code does); the paper interleaves them: sin in the even columns "
            f"0, 2, 4, ..., cos in the odd columns 1, 3, 5, ...: {FORMULA}.",
            table(layout="concatenated"),
        ),
        Mistake(
            "pe_sin_cos_swapped",
            f"You put cosines in the even columns and sines in the odd ones: {FORMULA}.",
            table(layout="cos_first"),
        ),
        *[
            Mistake(
                "pe_one_function",
                f"Both columns of each pair hold a {name}: the even column is the sine, the "
                f"odd one the cosine of the same angle: {FORMULA}.",
                table(layout=f"{name[:3]}_only"),
            )
            for name in ("sine", "cosine")
        ],
        Mistake(
            "pe_exponent_per_column",
            "Every column has its own frequency in your table, but columns 2i and 2i+1 must "
            "share one: the exponent is 2i/d_model with i = column // 2, not column / "
            f"d_model. {FORMULA}.",
            table(exponent="column"),
        ),
        Mistake(
            "pe_exponent_doubled",
            "Your frequencies fall twice as fast as they should: with j the column index, the "
            "exponent is 2*(j // 2)/d_model, not 2*j/d_model (the 2i of the formula already "
            f"counts pairs). {FORMULA}.",
            table(exponent="double"),
        ),
        Mistake(
            "pe_exponent_halved",
            "Your frequencies fall half as fast as they should: with i the pair index (i = "
            "column // 2 = 0, 1, 2, ...), the exponent is 2i/d_model, and you used i/d_model, "
            "e.g. `10000 ** (i / d_model)` with i from `np.arange(d_model // 2)`. (That table is "
            "the same as base 100 with the right exponent: 10000^(i/d) = 100^(2i/d).) Use "
            f"`np.arange(0, d_model, 2)`, which gives the values 2i directly. {FORMULA}.",
            table(exponent="half"),
        ),
        *[
            Mistake(
                "pe_wrong_base",
                f"Your frequencies use the base {base:g}; the paper uses 10000: {FORMULA}.",
                table(base=base),
            )
            for base in (10.0, 1000.0, 100000.0)  # base 100 is the halved exponent
        ],
        Mistake(
            "pe_positions_from_1",
            "Your positions start at 1; they start at 0 (row 0 is sin(0) = 0, cos(0) = 1).",
            table(start=1),
        ),
    ]


@learner_check
def check_positional_encoding(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a learner's sinusoidal positional encoding on cases that expose classic mistakes.

    Expected signature::

        positional_encoding(max_len, d_model) -> ndarray of shape (max_len, d_model)

    with ``PE[pos, 2i] = sin(pos / 10000^(2i / d_model))`` and ``PE[pos, 2i+1] = cos(pos /
    10000^(2i / d_model))`` (Vaswani et al. 2017, section 3.5): rows are positions 0 ..
    max_len-1, sines in even columns, cosines in odd columns. float32 or float64. Only even
    ``d_model`` are checked.

    Parameters
    ----------
    fn : callable
        The learner's function.
    verbose : bool
        Print a line for every case that passes.

    Returns
    -------
    True when every case passes; False, with one printed line, when ``fn`` is still the stub.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: sines and cosines concatenated instead of interleaved, or
        swapped, or the same function in both columns of a pair; one frequency per column,
        or exponents doubled or halved (the 2 of 2i forgotten); a base other than 10000;
        positions from 1; rows and columns (positions and dimensions) swapped; an integer
        array (which truncates every value); wrong shape or type.
    """
    c = Checker(fn, "positional_encoding", verbose)
    swapped_hint = (
        "Rows and columns are swapped: row `pos` must hold the encoding of position `pos`, "
        "so the table is (max_len, d_model)."
    )

    with c.case("positional_encoding(50, 16)"):
        got = c.array(c.call({"max_len": 50, "d_model": 16}))
        c.compare(
            got,
            sinusoidal_positional_encoding(50, 16, "float64"),
            _mistakes(50, 16),
            shape_hints={(16, 50): swapped_hint},
        )

    with c.case("positional_encoding(16, 16): a square table"):
        got = c.array(c.call({"max_len": 16, "d_model": 16}))
        expected = sinusoidal_positional_encoding(16, 16, "float64")
        transposed = Mistake("pe_transposed", swapped_hint, expected.T)
        c.compare(got, expected, [transposed, *_mistakes(16, 16)])

    with c.case("positional_encoding(10, 6)"):
        got = c.array(c.call({"max_len": 10, "d_model": 6}))
        c.compare(
            got,
            sinusoidal_positional_encoding(10, 6, "float64"),
            _mistakes(10, 6),
            shape_hints={(6, 10): swapped_hint},
        )

    return c.passed()
