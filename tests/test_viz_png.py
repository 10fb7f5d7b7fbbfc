"""viz.png writes PNG files that a decoder (Pillow) reads back to the same pixels."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from viz.png import encode_png


def decoded(png: bytes) -> np.ndarray:
    image = PIL.Image.open(io.BytesIO(png))
    image.load()  # checks every chunk's CRC and the zlib stream
    assert image.format == "PNG" and image.mode == "RGBA"
    return np.asarray(image)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (37, 53)])
def test_random_pixels_come_back_exactly(shape):
    # random bytes: every difference from the row above, including the ones that wrap
    # around 256, must be undone by the decoder
    rgba = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 4), dtype=np.uint8)
    np.testing.assert_array_equal(decoded(encode_png(rgba)), rgba)


def test_a_drawn_figure_comes_back_exactly_and_compresses():
    fig = Figure(figsize=(4, 3), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(np.random.default_rng(0).random((8, 8)))
    ax.set_title("attention weights")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    png = encode_png(rgba)
    np.testing.assert_array_equal(decoded(png), rgba)
    assert decoded(png).shape == (300, 400, 4)
    assert len(png) < rgba.nbytes / 5  # a figure is mostly flat colour


def test_a_non_contiguous_view_is_read_as_its_pixels():
    rgba = np.random.default_rng(1).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    view = rgba[::2, 5:25]
    np.testing.assert_array_equal(decoded(encode_png(view)), view)


@pytest.mark.parametrize(
    "pixels", [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 4), np.float32), np.zeros((4, 4))]
)
def test_anything_but_rgba_bytes_is_refused(pixels):
    with pytest.raises(ValueError, match="uint8"):
        encode_png(pixels)
