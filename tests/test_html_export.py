"""The standalone HTML export, checked without a browser: what the page holds and what it loads."""

from __future__ import annotations

import fnmatch
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.interpret import value_weighted_norms
from viz.html_export import CONTENT_SECURITY_POLICY, asset, json_for_script, to_html, unpack

ASSETS = Path(__file__).resolve().parents[1] / "viz" / "assets"

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
def model():
    return Encoder(EncoderConfig(n_layers=2, n_heads=4), seed=3)


@pytest.fixture(scope="module")
def trace(model):
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
    """The (layers, heads, n, n) weights of a page that stores every key, as its script reads
    them (0 where a row did not store a key)."""
    arrays = unpack(data["arrays"])
    n = len(data["tokens"])
    weights = arrays["weights"] / data["scale"]
    if "keys" not in arrays:
        return weights
    full = np.zeros(weights.shape[:-1] + (n,))
    np.put_along_axis(full, arrays["keys"].astype(np.intp), weights, axis=-1)
    return full


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


# ---------------------------------------------------------------------- the asset files


def test_the_script_is_javascript_node_can_parse(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node: install Debian's nodejs package to check the page's script")
    script = ASSETS / "attention.js"
    checked = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    # The check is not vacuous: one missing bracket is a syntax error node names.
    broken = tmp_path / "broken.js"
    text = script.read_text(encoding="utf-8")
    broken.write_text(text.replace("function element(", "function element", 1))
    checked = subprocess.run([node, "--check", str(broken)], capture_output=True, text=True)
    assert checked.returncode != 0 and "SyntaxError" in checked.stderr


class Skeleton(HTMLParser):
    """Checks a page skeleton as it is read: every element closed in order, ids unique."""

    VOID = {"meta", "link", "br", "hr", "img", "input", "source", "wbr", "col", "area"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.ids: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.ids += [value for name, value in attrs if name == "id" and value]
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.open[-1] if self.open else None}>")
        else:
            self.open.pop()


def test_the_skeleton_is_balanced_html_and_has_every_id_the_script_uses():
    skeleton = Skeleton()
    skeleton.feed(asset("attention.html"))
    skeleton.close()
    assert skeleton.problems == [] and skeleton.open == []
    assert len(skeleton.ids) == len(set(skeleton.ids)), "an id used twice"
    script = asset("attention.js")
    used = set(re.findall(r'\$\("([\w-]+)"\)', script))
    used |= set(re.findall(r'getElementById\("([\w-]+)"\)', script))
    assert len(used) >= 25, "the patterns find the look-ups"
    assert used <= set(skeleton.ids), f"the script looks up missing ids: {used - set(skeleton.ids)}"
    placeholders = re.findall(r"\{\{(\w+)\}\}", asset("attention.html"))
    assert sorted(placeholders) == ["csp", "css", "data", "script", "title"]


def test_the_assets_are_package_data():
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["viz"]
    files = sorted(path.name for path in ASSETS.iterdir())
    assert files == ["attention.css", "attention.html", "attention.js"]
    for name in files:
        assert any(fnmatch.fnmatch(f"assets/{name}", pattern) for pattern in patterns), name
        assert asset(name) == (ASSETS / name).read_text(encoding="utf-8")


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
    assert data["scale"] == 1000 and unpack(data["arrays"])["weights"].dtype == "<u2"
    assert data["top_k"] == 5, "up to 64 tokens every key is stored"
    expected = np.stack([trace[f"blocks.{l}.attn.weights"][0, :, :5, :5] for l in range(2)])
    np.testing.assert_allclose(decoded_weights(data), expected, rtol=0, atol=0.5e-3 + 1e-7)
    assert "mask" not in unpack(data["arrays"]), "with padding out, every query sees every key"
    assert "padding" in data["about"] and "1 padding token of its 6" in data["about"]


def test_layers_heads_and_batch_are_chosen_in_order():
    model = Encoder(EncoderConfig(n_layers=3, n_heads=4), seed=5)
    ids = [[2, 8, 9, 10, 3, 0], [2, 11, 12, 3, 0, 0]]
    _, trace = model.run_with_trace(ids, mask=[[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
    data = page_data(to_html(trace, None, layers=[2, 0], heads=[3, 1], batch=1, decimals=2))
    assert data["layers"] == [2, 0] and data["heads"] == [3, 1]
    assert data["tokens"] == ["0", "1", "2", "3"], "positions label the tokens by default"
    assert unpack(data["arrays"])["weights"].dtype == np.uint8 and data["scale"] == 100
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
    mask = unpack(data["arrays"])["mask"]
    np.testing.assert_array_equal(mask, np.tile(np.tril(np.ones((4, 4), np.uint8)), (2, 1, 1)))
    assert data["scale"] == 10_000
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


def minilm_shaped(tokens: int) -> tuple[Encoder, object]:
    """A random encoder of all-MiniLM-L6-v2's shape (6 layers x 12 heads, d_model 384) and its
    trace of one random sequence."""
    config = EncoderConfig(vocab_size=100, d_model=384, n_heads=12, n_layers=6, d_ff=64,
                           max_len=tokens)  # fmt: skip
    ids = np.random.default_rng(0).integers(0, 100, size=(1, tokens))
    model = Encoder(config, seed=0)
    return model, model.run_with_trace(ids)[1]


def minilm_shaped_trace(tokens: int):
    return minilm_shaped(tokens)[1]


@pytest.mark.parametrize(("tokens", "limit"), [(64, 1_000_000), (512, 5_000_000)])
def test_six_layers_twelve_heads_stay_within_the_size_targets(tokens, limit):
    model, trace = minilm_shaped(tokens)
    labels = [f"tok{i}" for i in range(tokens)]
    page = to_html(trace, labels)
    assert len(page.encode("utf-8")) <= limit
    data = page_data(page)
    assert data["top_k"] == (64 if tokens == 64 else 16)
    assert data["details"] == [0], "the starting layer's vectors"
    with_norms = to_html(trace, labels, norms=value_weighted_norms(model, trace))
    assert len(with_norms.encode("utf-8")) <= limit


# ---------------------------------------------------------------------- top-k rows


def test_long_rows_keep_their_largest_weights_and_the_rest_summed():
    trace = minilm_shaped_trace(80)
    weights = trace["blocks.1.attn.weights"][0]  # (heads, 80, 80)
    for top_k, expected in [(None, 16), (5, 5), (80, 80), (1000, 80)]:
        data = page_data(to_html(trace, None, layers=[1], top_k=top_k, details=[]))
        assert data["top_k"] == expected
        arrays = unpack(data["arrays"])
        if expected == 80:
            assert "keys" not in arrays and "rest" not in arrays
            continue
        keys = arrays["keys"][0].astype(np.intp)  # (heads, 80, k)
        kept = np.take_along_axis(weights, keys, axis=-1)
        assert np.all(np.diff(kept, axis=-1) <= 0), "largest first"
        smallest_kept = kept[..., -1:]
        others = np.ones_like(weights, dtype=bool)
        np.put_along_axis(others, keys, False, axis=-1)
        assert np.all(np.where(others, weights, 0) <= smallest_kept + 1e-7), "the k largest"
        stored = arrays["weights"][0] / data["scale"]
        np.testing.assert_allclose(stored, kept, atol=0.5e-3 + 1e-7)
        rest = arrays["rest"][0] / data["scale"]
        np.testing.assert_allclose(rest, np.where(others, weights, 0).sum(-1), atol=0.5e-3 + 1e-6)
        assert f"Each query keeps its {expected} largest weights" in data["about"]


# ---------------------------------------------------------------------- value-weighted norms


def test_value_weighted_norms_are_stored_for_the_detail_layers(model, trace):
    norms = value_weighted_norms(model, trace)  # (L, B, H, S, S)
    assert "norms" not in unpack(page_data(to_html(trace, TOKENS))["arrays"])
    data = page_data(to_html(trace, TOKENS, heads=[3, 1], layer=1, norms=norms))
    arrays = unpack(data["arrays"])
    assert arrays["norms"].shape == (1, 2, 5, 5) and arrays["norms"].dtype == np.dtype("<u2")
    stored = arrays["norms"] * arrays["norm_scale"][..., None, None].astype(np.float64)
    expected = norms[1, 0][[3, 1]][:, :5, :5]  # the real tokens of heads 3 and 1 of layer 1
    top = expected.max(axis=(1, 2))  # one scale per head: within half a step of 1/65535
    np.testing.assert_allclose(stored[0], expected, atol=top.max() / 65535 + 1e-12)
    assert np.argmax(stored[0, 0]) == np.argmax(expected[0]), "the largest stays the largest"
    both = unpack(page_data(to_html(trace, TOKENS, details=[1, 0], norms=norms))["arrays"])
    assert both["norms"].shape == (2, 4, 5, 5)
    decoded = both["norms"] * both["norm_scale"][..., None, None].astype(np.float64)
    np.testing.assert_allclose(decoded[0], norms[0, 0, :, :5, :5], atol=norms.max() / 6e4)


def test_long_rows_keep_their_largest_norms_not_those_of_their_largest_weights():
    model, trace = minilm_shaped(80)
    norms = value_weighted_norms(model, trace)
    arrays = unpack(page_data(to_html(trace, None, layer=1, norms=norms))["arrays"])
    expected = norms[1, 0]  # (heads, 80, 80)
    keys = arrays["norm_keys"][0].astype(np.intp)  # (heads, 80, 16)
    kept = np.take_along_axis(expected, keys, axis=-1)
    assert np.all(np.diff(kept, axis=-1) <= 0), "largest first"
    others = np.ones_like(expected, dtype=bool)
    np.put_along_axis(others, keys, False, axis=-1)
    assert np.all(np.where(others, expected, 0) <= kept[..., -1:] + 1e-12), "the 16 largest"
    rest = np.where(others, expected, 0).sum(-1)  # (heads, 80)
    # one scale per head: its largest stored number (a norm or a rest) is 65535 steps
    top = np.maximum(kept.max(axis=(1, 2)), rest.max(axis=1))
    scale = arrays["norm_scale"][0].astype(np.float64)  # (heads,)
    np.testing.assert_allclose(scale, top / 65535, rtol=1e-6)
    step = scale[:, None, None] * (0.5 + 1e-3)  # within half a step (and float32's scale)
    assert np.all(np.abs(arrays["norms"][0] * scale[:, None, None] - kept) <= step)
    assert np.all(np.abs(arrays["norm_rest"][0] * scale[:, None] - rest) <= step[..., 0])
    weight_keys = arrays["keys"][0].astype(np.intp)
    differ = [set(a) != set(b) for a, b in zip(keys.reshape(-1, 16), weight_keys.reshape(-1, 16),
                                               strict=True)]  # fmt: skip
    assert any(differ), "a row whose largest norms are not at its largest weights"


def test_bad_norms_are_refused_naming_the_argument(model, trace):
    norms = value_weighted_norms(model, trace)
    with pytest.raises(TypeError, match="norms must be the ndarray value_weighted_norms"):
        to_html(trace, TOKENS, norms=norms.tolist())
    with pytest.raises(ValueError, match=r"norms must have shape \(2, 1, 4, 6, 6\)"):
        to_html(trace, TOKENS, norms=norms[0])
    with pytest.raises(TypeError, match="norms must hold floats, got dtype int64"):
        to_html(trace, TOKENS, norms=norms.astype(np.int64))
    for bad in (np.nan, -1.0, np.inf):
        broken = norms.copy()
        broken[1, 0, 2, 3, 1] = bad
        with pytest.raises(ValueError, match="norms must be finite and >= 0"):
            to_html(trace, TOKENS, norms=broken)
    with pytest.raises(ValueError, match="details is empty"):
        to_html(trace, TOKENS, norms=norms, details=[])


def test_top_k_must_be_a_positive_int(trace):
    for bad, error in [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)]:
        with pytest.raises(error, match="top_k must be"):
            to_html(trace, TOKENS, top_k=bad)


# ---------------------------------------------------------------------- details


def test_details_hold_the_recorded_vectors_and_products(trace):
    data = page_data(to_html(trace, TOKENS, layers=[1, 0], heads=[3, 1], details=[0, 1]))
    arrays = unpack(data["arrays"])
    assert data["details"] == [1, 0], "indices into the page's layers [1, 0]"
    d_head = trace.config.d_model // trace.config.n_heads
    assert data["d_head"] == d_head and data["scaled_scores"] is True
    for name in ("q", "k", "v", "z"):
        stored = arrays[name] * arrays[f"{name}_scale"][..., None]  # (2, 2, 5, d_head)
        for d, layer in enumerate([0, 1]):
            recorded = trace[f"blocks.{layer}.attn.{name}"][0, [3, 1], :5]
            top = np.abs(recorded).max(axis=-1, keepdims=True)
            assert np.all(np.abs(stored[d] - recorded) <= top / 254 + 1e-6), name
    for name in ("qk", "scores"):
        stored = arrays[name] * arrays[f"{name}_scale"][..., None, None]  # (2, 2, 5, 5)
        for d, layer in enumerate([0, 1]):
            recorded = trace[f"blocks.{layer}.attn.{name}"][0, [3, 1], :5, :5]
            assert np.abs(stored[d] - recorded).max() <= np.abs(recorded).max() / 32767 + 1e-6


def test_details_of_long_rows_follow_the_stored_keys():
    trace = minilm_shaped_trace(80)
    data = page_data(to_html(trace, None, layers=[2], details=[2]))
    arrays = unpack(data["arrays"])
    keys = arrays["keys"][0].astype(np.intp)  # (heads, 80, 16)
    recorded = np.take_along_axis(trace["blocks.2.attn.scores"][0], keys, axis=-1)
    stored = arrays["scores"][0] * arrays["scores_scale"][0][:, None, None]
    assert np.abs(stored - recorded).max() <= np.abs(recorded).max() / 32767 + 1e-6


def test_the_plane_is_the_qk_projection_of_each_head(trace):
    from viz.qk_space import qk_projection

    arrays = unpack(page_data(to_html(trace, TOKENS, layer=1, heads=[2]))["arrays"])
    expected = qk_projection(
        trace["blocks.1.attn.q"][0, 2, :5].astype(np.float64),
        trace["blocks.1.attn.k"][0, 2, :5].astype(np.float64),
    )
    np.testing.assert_allclose(arrays["plane"][0, 0, :5], expected.queries, atol=1e-5)
    np.testing.assert_allclose(arrays["plane"][0, 0, 5:], expected.keys, atol=1e-5)
    np.testing.assert_allclose(arrays["explained"][0, 0], expected.explained, atol=1e-6)


def test_the_projections_run_on_one_blas_thread(trace, monkeypatch):
    """Each projection's SVD is tiny: BLAS threads only fight over it (a 512-token page took
    5 to 17 s to build on a busy 2-core machine, 0.4 s per head). It runs on one thread."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import viz.html_export
    from viz.qk_space import qk_projection

    def blas_threads() -> list[int]:
        pools = threadpoolctl.threadpool_info()
        return [pool["num_threads"] for pool in pools if pool["user_api"] == "blas"]

    during = []

    def projection(q, k):
        during.extend(blas_threads())
        return qk_projection(q, k)

    monkeypatch.setattr(viz.html_export, "qk_projection", projection)
    before = blas_threads()
    to_html(trace, TOKENS)
    assert during and set(during) == {1}
    assert blas_threads() == before, "NumPy has its threads back afterwards"


def test_the_corpus_plane_projects_every_sequence_together():
    from viz.qk_space import qk_projection

    model = Encoder(EncoderConfig(n_layers=2, n_heads=2, type_vocab_size=2), seed=5)
    ids = [[2, 8, 9, 3, 0], [2, 10, 3, 11, 3], [2, 12, 3, 0, 0]]
    real = [4, 5, 3]
    types = [[0, 0, 0, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]
    mask = [[1] * r + [0] * (5 - r) for r in real]
    _, trace = model.run_with_trace(ids, mask=mask, token_type_ids=types)
    words = [[f"s{b}w{i}" for i in range(5)] for b in range(3)]
    data = page_data(to_html(trace, words, corpus=True, batch=1, layer=1))
    corpus = data["corpus"]
    assert corpus["tokens"] == [words[b][i] for b in range(3) for i in range(real[b])]
    assert corpus["sequences"] == [0] * 4 + [1] * 5 + [2] * 3
    assert corpus["positions"] == [0, 1, 2, 3, 0, 1, 2, 3, 4, 0, 1, 2]
    assert corpus["segments"] == [0] * 4 + [0, 0, 0, 1, 1] + [0] * 3
    assert (corpus["offset"], corpus["count"]) == (4, 3)
    assert len(set(corpus["colors"])) == 3
    assert data["tokens"] == words[1], "the other views show sequence 1"
    arrays = unpack(data["arrays"])
    assert arrays["plane"].shape == (1, 2, 24, 2) and arrays["q"].shape[:3] == (1, 2, 5)
    for h in range(2):
        q = np.vstack([trace["blocks.1.attn.q"][b, h, : real[b]] for b in range(3)])
        k = np.vstack([trace["blocks.1.attn.k"][b, h, : real[b]] for b in range(3)])
        expected = qk_projection(q.astype(np.float64), k.astype(np.float64))
        np.testing.assert_allclose(arrays["plane"][0, h, :12], expected.queries, atol=1e-5)
        np.testing.assert_allclose(arrays["plane"][0, h, 12:], expected.keys, atol=1e-5)
    assert "all 3 sequences" in data["about"]
    alone = page_data(to_html(trace, words[1], batch=1, layer=1))
    assert alone["corpus"] is None and unpack(alone["arrays"])["plane"].shape == (1, 2, 10, 2)


def test_corpus_tokens_are_one_list_per_sequence(trace):
    with pytest.raises(TypeError, match="with corpus=True, tokens must be one list of tokens per"):
        to_html(trace, TOKENS, corpus=True)
    with pytest.raises(ValueError, match="tokens has 2 sequences but the trace's batch has 1"):
        to_html(trace, [TOKENS, TOKENS], corpus=True)
    with pytest.raises(ValueError, match=r"tokens\[0\] has 5 entries but the trace has 6"):
        to_html(trace, [TOKENS[:5]], corpus=True)
    with pytest.raises(TypeError, match="corpus must be True or False, got str 'yes'"):
        to_html(trace, TOKENS, corpus="yes")
    assert page_data(to_html(trace, None, corpus=True))["corpus"]["tokens"] == list("01234")


def test_details_are_checked(trace):
    with pytest.raises(ValueError, match=r"details layer 1 is not in the page: layers holds \[0\]"):
        to_html(trace, TOKENS, layers=[0], details=[1])
    with pytest.raises(IndexError, match=r"layer must be in \[0, 2\), got 5"):
        to_html(trace, TOKENS, details=[5])
    kept = trace.filter(["blocks.*.attn.weights", "blocks.*.attn.mask"])
    with pytest.raises(KeyError, match="blocks.0.attn.q"):
        to_html(kept, TOKENS)
    assert page_data(to_html(kept, TOKENS, details=[]))["details"] == []


def test_a_sentence_pair_carries_its_segments():
    model = Encoder(EncoderConfig(n_layers=1, n_heads=2, type_vocab_size=2), seed=0)
    ids = [[2, 8, 3, 9, 10, 3, 0]]
    types = [[0, 0, 0, 1, 1, 1, 0]]
    _, trace = model.run_with_trace(ids, mask=[[1] * 6 + [0]], token_type_ids=types)
    assert page_data(to_html(trace, None))["segments"] == [0, 0, 0, 1, 1, 1]
    _, single = model.run_with_trace([[2, 8, 3]])
    assert page_data(to_html(single, None))["segments"] is None


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
    assert page_data(to_html(only_layer_1, TOKENS, layers=[1], details=[]))["layers"] == [1]


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
