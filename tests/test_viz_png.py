"""viz.png writes PNG files that a decoder (Pillow) reads back to the same pixels."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import viz.png
from viz.png import encode_png


@pytest.fixture(params=["isal", "zlib"], autouse=True)
def compressor(request, monkeypatch):
    """Every test runs with ISA-L's deflate (installed with the test extra) and with zlib's."""
    if request.param == "isal":
        assert viz.png.isal_zlib is not None, "the test extra installs isal"
    else:
        monkeypatch.setattr(viz.png, "isal_zlib", None)
    return request.param


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


def test_isal_and_zlib_write_the_same_pixels_in_files_of_about_the_same_size(monkeypatch):
    from isal import isal_zlib

    fig = Figure(figsize=(4, 3), dpi=100)
    fig.add_subplot().imshow(np.random.default_rng(2).random((8, 8)))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    monkeypatch.setattr(viz.png, "isal_zlib", isal_zlib)
    with_isal = encode_png(rgba)
    monkeypatch.setattr(viz.png, "isal_zlib", None)
    with_zlib = encode_png(rgba)
    assert with_isal != with_zlib  # two different compressors ran
    np.testing.assert_array_equal(decoded(with_isal), decoded(with_zlib))
    assert 0.8 < len(with_isal) / len(with_zlib) < 1.25
