"""What a reader can read: every piece of text a figure draws, checked after a real draw.

:func:`text_problems` draws the figure and lists every text that is too small, clipped (outside
the figure or outside its clip box) or overlapping another text; :func:`assert_readable` fails
with that list. Only text that is really drawn counts: the check hooks ``Text.draw`` for the
duration of one draw, so invisible tick labels, hidden axes and empty strings are left out.

Rotated text (other than by multiples of 90 degrees) is checked for size and clipping, but its
axis-aligned box is larger than its glyphs, so it is not checked for overlaps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

#: The smallest font size (points) a figure may use at its default size.
MIN_POINTS = 7.0
#: Slack in pixels: boxes that touch or overlap by less than this are fine.
TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class DrawnText:
    text: str
    size: float
    box: Bbox
    clip: Bbox | None
    axis_aligned: bool


@contextmanager
def _drawn_texts() -> Iterator[list[DrawnText]]:
    """Collect every Text that draws itself while the context is open."""
    drawn: list[DrawnText] = []
    original = Text.draw

    def draw(self: Text, renderer) -> None:  # type: ignore[no-untyped-def]
        original(self, renderer)
        if not self.get_visible() or not self.get_text().strip():
            return
        clip = self.get_clip_box() if self.get_clip_on() else None
        drawn.append(
            DrawnText(
                self.get_text(),
                float(self.get_fontsize()),
                self.get_window_extent(renderer),
                None if clip is None else Bbox(clip.get_points()),
                float(self.get_rotation()) % 90 == 0,
            )
        )

    Text.draw = draw  # type: ignore[method-assign]
    try:
        yield drawn
    finally:
        Text.draw = original  # type: ignore[method-assign]


def drawn_texts(fig: Figure) -> list[DrawnText]:
    """Every text drawn by one full draw of ``fig``, with its size and box in pixels.

    A figure made without pyplot has a canvas that draws nothing (``FigureCanvasBase``): it is
    given an Agg canvas first, as ``savefig`` does.
    """
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    with _drawn_texts() as drawn:
        canvas.draw()
    return drawn


def _inside(box: Bbox, frame: Bbox) -> bool:
    t = TOLERANCE_PX
    return (
        box.x0 >= frame.x0 - t
        and box.y0 >= frame.y0 - t
        and box.x1 <= frame.x1 + t
        and box.y1 <= frame.y1 + t
    )


def _overlapping_pairs(texts: list[DrawnText]) -> list[tuple[int, int]]:
    """Index pairs (i < j) of axis-aligned texts whose boxes overlap by more than the slack."""
    idx = [i for i, t in enumerate(texts) if t.axis_aligned]
    if len(idx) < 2:
        return []
    b = np.array([texts[i].box.extents for i in idx])  # (n, 4): x0, y0, x1, y1
    overlap_x = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
    overlap_y = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
    hit = (overlap_x > TOLERANCE_PX) & (overlap_y > TOLERANCE_PX)
    rows, cols = np.nonzero(np.triu(hit, k=1))
    return [(idx[r], idx[c]) for r, c in zip(rows, cols, strict=True)]


def text_problems(
    fig: Figure, min_points: float = MIN_POINTS, max_pixels: int | None = None
) -> list[str]:
    """Every readability problem of ``fig``, in words (empty when it is readable).

    A text is a problem when it is smaller than ``min_points``, reaches outside the figure or
    outside its clip box, or overlaps another drawn text. With ``max_pixels``, a figure whose
    longer side is larger than that many pixels is a problem too.
    """
    texts = drawn_texts(fig)
    frame = fig.bbox
    problems = []
    if max_pixels is not None and max(frame.width, frame.height) > max_pixels:
        problems.append(f"figure is {frame.width:.0f} x {frame.height:.0f} px (> {max_pixels})")
    for t in texts:
        if t.size < min_points:
            problems.append(f"{t.text!r} is {t.size:g} pt (< {min_points:g})")
        if not _inside(t.box, frame):
            problems.append(f"{t.text!r} reaches outside the figure ({_describe(t.box)})")
        elif t.clip is not None and not _inside(t.box, t.clip):
            problems.append(f"{t.text!r} is clipped by its axes ({_describe(t.box)})")
    for i, j in _overlapping_pairs(texts):
        problems.append(f"{texts[i].text!r} overlaps {texts[j].text!r}")
    return problems


def assert_readable(
    fig: Figure, min_points: float = MIN_POINTS, max_pixels: int | None = None
) -> None:
    """Fail listing every problem :func:`text_problems` finds (at most 20 of them)."""
    problems = text_problems(fig, min_points, max_pixels)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise AssertionError(f"{len(problems)} readability problem(s):\n  {shown}{more}")


def _describe(box: Bbox) -> str:
    return f"x {box.x0:.0f}..{box.x1:.0f}, y {box.y0:.0f}..{box.y1:.0f} px"
