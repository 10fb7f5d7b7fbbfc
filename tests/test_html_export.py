"""The standalone HTML export, checked without a browser: what the page holds and what it loads."""

from __future__ import annotations

import base64
import html
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from viz.html_assets import CONTENT_SECURITY_POLICY
from viz.html_export import json_for_script, to_html

TOKENS = ["[CLS]", "my", "dog", "barks", "[SEP]", "[PAD]"]
HOSTILE = [
    "[CLS]",
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(2)</script>",
    "\"'&amp;",
    "<!--",
    "a\u2028b\u2029c",
    "[PAD]",
]


@pytest.fixture(scope="module")
def trace():
    model = Encoder(EncoderConfig(n_layers=2, n_heads=4), seed=3)
    _, trace = model.run_with_trace([[2, 8, 9, 10, 3, 0]], mask=[[1, 1, 1, 1, 1, 0]])
    return trace


@pytest.fixture(scope="module")
def hostile_trace():
    model = Encoder(EncoderConfig(n_layers=1, n_heads=2), seed=1)
    _, trace = model.run_with_trace([[2, 8, 9, 10, 11, 12, 0]], mask=[[1] * 6 + [0]])
    return trace


def page_data(page: str) -> dict:
    """The JSON the page carries, parsed as the browser's JSON.parse would."""
    match = re.search(
        r'<script type="application/json" id="attention-data">(.*?)</script>', page, re.S
    )
    assert match is not None
    return json.loads(match.group(1))


def decoded_weights(data: dict) -> np.ndarray:
    """The (layers, heads, n, n) weights of the page, decoded as its script decodes them."""
    spec = data["weights"]
    dtype = {1: np.uint8, 2: np.dtype("<u2")}[spec["bytes_per_weight"]]
    stored = np.frombuffer(base64.b64decode(spec["base64"]), dtype=dtype)
    n = len(data["tokens"])
    return stored.reshape(len(data["layers"]), len(data["heads"]), n, n) / spec["scale"]


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the text of its script elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if self.lasttag == "script":
            self.scripts.append(data)


def tags_of(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    parser.close()
    return parser


# ---------------------------------------------------------------------- self-contained


def test_page_loads_nothing_from_outside(trace):
    page = to_html(trace, TOKENS)
    for needle in ("http://", "https://", "//cdn", "@import", "url("):
        assert needle not in page
    parsed = tags_of(page)
    names = [tag for tag, _ in parsed.tags]
    assert names.count("script") == 2, "one JSON block and one inline script, nothing else"
    assert not {"img", "link", "iframe", "object", "embed", "base"} & set(names)
    for tag, attrs in parsed.tags:
        assert "src" not in attrs and "href" not in attrs, (tag, attrs)
    csp = [a["content"] for t, a in parsed.tags if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == [CONTENT_SECURITY_POLICY]
    assert "default-src 'none'" in csp[0]


def test_the_page_is_returned_and_written_as_utf8(trace, tmp_path):
    path = tmp_path / "attention.html"
    page = to_html(trace, HOSTILE[:4] + ["é", "[PAD]"], path)
    assert path.read_text(encoding="utf-8") == page
    assert page.startswith("<!DOCTYPE html>")


# ---------------------------------------------------------------------- the data


def test_embedded_weights_are_the_trace_weights_within_the_rounding(trace):
    page = to_html(trace, TOKENS)
    data = page_data(page)
    assert data["layers"] == [0, 1] and data["heads"] == [0, 1, 2, 3]
    assert data["tokens"] == TOKENS[:5], "the padding token is left out"
    assert data["positions"] == [0, 1, 2, 3, 4]
    assert data["weights"]["scale"] == 1000 and data["weights"]["bytes_per_weight"] == 2
    expected = np.stack([trace[f"blocks.{l}.attn.weights"][0, :, :5, :5] for l in range(2)])
    np.testing.assert_allclose(decoded_weights(data), expected, rtol=0, atol=0.5e-3 + 1e-7)
    assert data["mask"] is None, "with padding removed, every query may see every key"
    assert "padding" in data["about"] and "1 padding token of its 6" in data["about"]


def test_layers_heads_and_batch_are_chosen_in_order():
    model = Encoder(EncoderConfig(n_layers=3, n_heads=4), seed=5)
    ids = [[2, 8, 9, 10, 3, 0], [2, 11, 12, 3, 0, 0]]
    _, trace = model.run_with_trace(ids, mask=[[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
    data = page_data(to_html(trace, None, layers=[2, 0], heads=[3, 1], batch=1, decimals=2))
    assert data["layers"] == [2, 0] and data["heads"] == [3, 1]
    assert data["tokens"] == ["0", "1", "2", "3"], "positions label the tokens by default"
    assert data["weights"]["bytes_per_weight"] == 1 and data["weights"]["scale"] == 100
    expected = np.stack(
        [trace[f"blocks.{l}.attn.weights"][1][np.ix_([3, 1], range(4), range(4))] for l in [2, 0]]
    )
    np.testing.assert_allclose(decoded_weights(data), expected, rtol=0, atol=0.5e-2 + 1e-7)
    assert not np.allclose(decoded_weights(data)[0], decoded_weights(data)[1])


def test_a_causal_mask_is_kept_for_the_real_tokens():
    model = Encoder(EncoderConfig(n_layers=2, n_heads=2, causal=True), seed=2)
    _, trace = model.run_with_trace([[2, 8, 9, 10, 0]], mask=[[1, 1, 1, 1, 0]])
    data = page_data(to_html(trace, ["a", "b", "c", "d", "pad"], decimals=4))
    assert data["tokens"] == ["a", "b", "c", "d"]
    mask = np.frombuffer(base64.b64decode(data["mask"]), dtype=np.uint8).reshape(2, 4, 4)
    np.testing.assert_array_equal(mask, np.tile(np.tril(np.ones((4, 4), np.uint8)), (2, 1, 1)))
    assert data["weights"]["scale"] == 10_000
    assert np.all(decoded_weights(data)[..., np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]]
                  == 0)  # fmt: skip


def test_colours_come_from_viz_style(trace):
    from viz.style import MASKED_COLOR, head_color, weights_cmap

    data = page_data(to_html(trace, TOKENS, heads=[2, 0]))
    assert data["head_colors"] == [head_color(2), head_color(0)]
    assert data["masked_color"] == MASKED_COLOR
    assert len(data["colormap"]) == 256
    top = np.rint(np.array(weights_cmap()(1.0)[:3]) * 255).astype(int)
    assert data["colormap"][-1] == "#{:02x}{:02x}{:02x}".format(*top)
    assert data["colormap"][0] == "#f7fbff", "Blues starts near white"


def test_the_page_opens_at_the_chosen_layer_head_and_query(trace):
    data = page_data(to_html(trace, TOKENS))
    assert data["start"] == {"layer": 0, "head": 0, "query": None}
    data = page_data(to_html(trace, TOKENS, layer=1, head=2, query=3))
    assert data["start"] == {"layer": 1, "head": 2, "query": 3}
    # Indices into the page's own lists: layers [1, 0] and heads [3, 2] put layer 0 second.
    data = page_data(to_html(trace, TOKENS, layers=[1, 0], heads=[3, 2], layer=0, head=2))
    assert data["start"] == {"layer": 1, "head": 1, "query": None}


def test_a_bad_starting_layer_head_or_query_is_refused(trace):
    with pytest.raises(IndexError, match=r"layer must be in \[0, 2\), got 2"):
        to_html(trace, TOKENS, layer=2)
    with pytest.raises(ValueError, match=r"head 1 is not in the page: heads holds \[0, 3\]"):
        to_html(trace, TOKENS, heads=[0, 3], head=1)
    with pytest.raises(IndexError, match=r"query must be in \[0, 6\), got -1"):
        to_html(trace, TOKENS, query=-1)
    with pytest.raises(ValueError, match="query 5 is a padding position"):
        to_html(trace, TOKENS, query=5)
    with pytest.raises(TypeError, match="query"):
        to_html(trace, TOKENS, query="dog")


# ---------------------------------------------------------------------- escaping


def test_hostile_tokens_stay_text_in_the_raw_page(hostile_trace):
    page = to_html(hostile_trace, HOSTILE, title="<b>title</b> & </title><script>x()</script>")
    assert "<img" not in page
    assert page.count("onerror=alert(1)") == 1, "once, inside the JSON block"
    assert page.count("</script") == 2, "only the two script elements of the page close"
    assert page.count("<script") == 2
    assert "<!--" not in page
    assert "\u2028" not in page and "\u2029" not in page
    assert "<title>&lt;b&gt;title&lt;/b&gt; &amp; &lt;/title&gt;" in page
    parsed = tags_of(page)
    assert [t for t, _ in parsed.tags].count("script") == 2
    data = page_data(page)
    assert data["tokens"] == HOSTILE[:6], "JSON.parse gives the tokens back exactly"
    assert data["title"].startswith("<b>title</b>")


def test_json_for_script_escapes_what_could_end_or_confuse_a_script():
    hostile = {"t": ["</script>", "<!--", "a&b", "x>y", "\u2028\u2029", "é"]}
    text = json_for_script(hostile)
    assert not set("<>&\u2028\u2029é") & set(text)
    assert "\\u003c/script\\u003e" in text
    assert json.loads(text) == hostile
    with pytest.raises(ValueError):
        json_for_script({"x": float("nan")})


# ---------------------------------------------------------------------- size


def test_six_layers_twelve_heads_sixty_four_tokens_stay_under_two_megabytes():
    model = Encoder(EncoderConfig(n_layers=6, n_heads=12, d_model=48, max_len=64), seed=0)
    _, trace = model.run_with_trace(np.arange(64)[None] % 64)
    page = to_html(trace, [f"tok{i}" for i in range(64)])
    size = len(page.encode("utf-8"))
    assert size < 2_000_000
    weights_base64 = 4 * (6 * 12 * 64 * 64 * 2) // 3
    assert weights_base64 < size < weights_base64 + 40_000, "the weights are nearly all of it"
    smaller = len(to_html(trace, None, decimals=2).encode("utf-8"))
    assert smaller < 0.55 * size, "two decimals take one byte per weight"


# ---------------------------------------------------------------------- errors


def test_bad_arguments_name_the_problem(trace):
    with pytest.raises(ValueError, match="tokens has 5 entries but the trace has 6"):
        to_html(trace, TOKENS[:5])
    with pytest.raises(TypeError, match="tokens must be a sequence"):
        to_html(trace, "my dog barks")
    with pytest.raises(IndexError, match=r"layer must be in \[0, 2\), got 2"):
        to_html(trace, TOKENS, layers=[2])
    with pytest.raises(IndexError, match=r"head must be in \[0, 4\), got 4"):
        to_html(trace, TOKENS, heads=[0, 4])
    with pytest.raises(ValueError, match="heads is empty"):
        to_html(trace, TOKENS, heads=[])
    with pytest.raises(IndexError, match=r"batch must be in \[0, 1\), got 1"):
        to_html(trace, TOKENS, batch=1)
    with pytest.raises(ValueError, match=r"decimals must be in 1 \.\. 4, got 5"):
        to_html(trace, TOKENS, decimals=5)
    with pytest.raises(TypeError, match="decimals must be an int"):
        to_html(trace, TOKENS, decimals=2.5)
    with pytest.raises(TypeError, match="title must be a str"):
        to_html(trace, TOKENS, title=3)


def test_a_trace_without_weights_says_what_is_missing(trace):
    kept = trace.filter(["blocks.*.attn.q"])
    with pytest.raises(KeyError, match="the HTML export needs 'blocks.0.attn.weights'"):
        to_html(kept, TOKENS)
    only_layer_1 = trace.filter(["blocks.1.attn.weights", "blocks.1.attn.mask"])
    assert page_data(to_html(only_layer_1, TOKENS, layers=[1]))["layers"] == [1]


def test_a_row_of_padding_only_is_refused():
    model = Encoder(EncoderConfig(n_layers=1, n_heads=2), seed=0)
    _, trace = model.run_with_trace([[2, 3, 0], [0, 0, 0]], mask=[[1, 1, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="batch row 1 has no real token"):
        to_html(trace, None, batch=1)


# ---------------------------------------------------------------------- writing


@pytest.mark.parametrize(
    "title",
    ["\ud800", "lone \udcff surrogate", "\udfff</title>\ud800", "emoji \U0001f600 and \ud83d"],
)
def test_an_unencodable_title_is_written_as_its_escape(trace, tmp_path, title):
    path = tmp_path / "page.html"
    page = to_html(trace, TOKENS, path, title=title)
    assert path.read_text(encoding="utf-8") == page
    expected = title.encode("utf-8", "backslashreplace").decode("utf-8")
    assert page_data(page)["title"] == expected
    assert f"<title>{html.escape(expected)}</title>" in page


def test_unencodable_tokens_are_written_as_their_escape(tmp_path):
    model = Encoder(EncoderConfig(n_layers=1, n_heads=2), seed=0)
    _, trace = model.run_with_trace([[2, 8, 9, 3]])
    tokens = ["[CLS]", "\ud800", "a\udcffb", "<\udfff>"]
    path = tmp_path / "page.html"
    data = page_data(to_html(trace, tokens, path))
    assert data["tokens"] == ["[CLS]", "\\ud800", "a\\udcffb", "<\\udfff>"]
    assert page_data(path.read_text(encoding="utf-8")) == data


def test_a_failed_write_leaves_the_old_page_whole(trace, tmp_path, monkeypatch):
    import os

    path = tmp_path / "page.html"
    old = to_html(trace, TOKENS, path, title="old")
    path.chmod(0o640)

    def disk_full(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        to_html(trace, TOKENS, path, title="new")
    assert path.read_text(encoding="utf-8") == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"], "no temporary file left"
    monkeypatch.undo()
    to_html(trace, TOKENS, path, title="new")
    assert page_data(path.read_text(encoding="utf-8"))["title"] == "new"
    assert path.stat().st_mode & 0o777 == 0o640, "the page keeps its mode"
    fresh = tmp_path / "fresh.html"
    to_html(trace, TOKENS, fresh)
    assert fresh.stat().st_mode & 0o777 == 0o644


def test_a_page_cannot_replace_a_folder(trace, tmp_path):
    (tmp_path / "folder.html").mkdir()
    with pytest.raises(OSError):
        to_html(trace, TOKENS, tmp_path / "folder.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.html"]
