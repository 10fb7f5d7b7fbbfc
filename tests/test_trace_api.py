"""The Trace: a read-only mapping whose names, order and shapes are the documented ones.

``names()`` is compared with :func:`minitransformer.trace.expected_names`, which is derived
from :data:`~minitransformer.trace.NAME_TABLE` alone, for every option combination: this is
the check that the table documents what the encoder records. Every recorded shape is checked
against the table's shape string (NumPy only).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from minitransformer import NAME_TABLE, Encoder, EncoderConfig
from minitransformer.trace import expected_names, template_of

# Distinct sizes, so that a swapped axis cannot go unnoticed: B=2, S=5, D=12, H=3, Dh=4, F=7.
B, S, D, H, F = 2, 5, 12, 3, 7
DIMS = {"B": B, "S": S, "D": D, "H": H, "Dh": D // H, "F": F}


def config(**overrides) -> EncoderConfig:
    fields = dict(vocab_size=11, d_model=D, n_heads=H, n_layers=2, d_ff=F, max_len=8)
    fields.update(overrides)
    return EncoderConfig(**fields)


def parse_shapes(shape: str) -> list[tuple[int, ...]]:
    """``"(B, 1, 1, S) or (B, 1, S, S)"`` -> ``[(2, 1, 1, 5), (2, 1, 5, 5)]`` with DIMS."""
    shapes = []
    for alternative in shape.split(" or "):
        match = re.fullmatch(r"\((.*)\)", alternative.strip())
        assert match, f"unparsable shape string {shape!r}"
        dims = [d.strip() for d in match.group(1).split(",") if d.strip()]
        shapes.append(tuple(int(d) if d.isdigit() else DIMS[d] for d in dims))
    return shapes


def test_parse_shapes():
    assert parse_shapes("(B, H, S, Dh)") == [(2, 3, 5, 4)]
    assert parse_shapes("(S, D)") == [(5, 12)]
    assert parse_shapes("(B, 1, 1, S) or (B, 1, S, S)") == [(2, 1, 1, 5), (2, 1, 5, 5)]
    with pytest.raises(KeyError):
        parse_shapes("(B, X)")


TABLE_SHAPES = {row.name: parse_shapes(row.shape) for row in NAME_TABLE}

OPTIONS = list(
    itertools.product(
        ["sinusoidal", "learned", "none"],  # positional
        ["post", "pre"],  # norm
        [False, True],  # embed_layer_norm
        [0, 2],  # type_vocab_size
        [False, True],  # causal
        [False, True],  # training (with dropout 0.1)
    )
)


def run(cfg: EncoderConfig, training: bool = False, **kwargs):
    ids = np.arange(B * S).reshape(B, S) % cfg.vocab_size
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    return Encoder(cfg, seed=0).run_with_trace(ids, mask, training=training, **kwargs)


@pytest.fixture(scope="module")
def post():
    return run(config(type_vocab_size=2, embed_layer_norm=True))[1]


@pytest.fixture(scope="module")
def pre():
    return run(config(norm="pre"))[1]


# --------------------------------------------------------------- names and shapes


def test_names_and_shapes_match_the_name_table_for_every_option_combination():
    seen_templates = set()
    for positional, norm, embed_ln, types, causal, training in OPTIONS:
        cfg = config(
            positional=positional, norm=norm, embed_layer_norm=embed_ln, type_vocab_size=types,
            causal=causal, dropout=0.1, activation="gelu",
        )  # fmt: skip
        hidden, trace = run(cfg, training)
        combo = (positional, norm, embed_ln, types, causal, training)
        assert trace.names() == expected_names(cfg, training), combo
        assert list(trace) == trace.names() and len(trace) == len(trace.names())
        for name in trace.names():
            template = template_of(name)
            allowed = TABLE_SHAPES[template]
            shape = trace[name].shape
            if template == "blocks.{l}.attn.mask":  # second shape string when causal
                assert shape == allowed[1 if causal else 0], (combo, name)
            else:
                assert len(allowed) == 1 and shape == allowed[0], (combo, name, shape)
            seen_templates.add(template)
        assert hidden.shape == (B, S, D)
    # Every row of the table is recorded by some configuration: no stale rows.
    assert seen_templates == {row.name for row in NAME_TABLE}


def test_expected_names_in_post_norm_follow_the_table_order():
    cfg = config(type_vocab_size=2, embed_layer_norm=True, dropout=0.1, n_layers=1)
    names = [row.name.replace("{l}", "0") for row in NAME_TABLE if row.name != "final_ln.mean"]
    names = [n for n in names if not n.startswith("final_ln.")]
    assert expected_names(cfg, training=True) == names


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_layer_norms_sit_where_the_equations_put_them(norm):
    names = run(config(norm=norm))[1].names()
    position = {name: i for i, name in enumerate(names)}
    for l in range(2):
        b = f"blocks.{l}"
        if norm == "post":  # LN1(x + attn), LN2(h + ffn)
            assert position[f"{b}.resid_mid"] < position[f"{b}.ln1.out"] < position[f"{b}.ffn.pre"]
            assert position[f"{b}.resid_post"] < position[f"{b}.ln2.out"] < position[f"{b}.out"]
        else:  # attn(LN1(x)), ffn(LN2(resid_mid))
            assert position[f"{b}.ln1.out"] < position[f"{b}.attn.q"]
            assert position[f"{b}.resid_mid"] < position[f"{b}.ln2.out"] < position[f"{b}.ffn.pre"]
    assert ("final_ln.out" in names) == (norm == "pre")
    if norm == "pre":
        assert names[-4:] == ["final_ln.mean", "final_ln.std", "final_ln.normed", "final_ln.out"]


# ----------------------------------------------------------------------- read-only


def test_trace_is_read_only(post):
    with pytest.raises(TypeError):
        post["embed.out"] = np.zeros((B, S, D))  # type: ignore[index]
    with pytest.raises(TypeError):
        del post["embed.out"]  # type: ignore[attr-defined]
    for name in post:
        with pytest.raises(ValueError, match="read-only"):
            post[name][(0,) * post[name].ndim] = 1
    with pytest.raises(ValueError, match="read-only"):
        post.head(0, 1)["weights"][0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        post.layer(1)["blocks.1.attn.q"][...] = 0.0


def test_freezing_the_trace_freezes_no_parameter_and_no_input():
    cfg = config(positional="learned")
    model = Encoder(cfg, seed=0)
    ids = np.array([[1, 2, 3]])
    mask = np.array([[True, True, False]])
    _, trace = model.run_with_trace(ids, mask)
    assert all(p.flags.writeable for p in model.params.values())
    assert ids.flags.writeable and mask.flags.writeable
    np.testing.assert_array_equal(trace["embed.positions"], model.params["embed.W_pos"][:3])
    sinusoidal = Encoder(config(), seed=0)
    sinusoidal.run_with_trace(ids)
    assert sinusoidal.positional_encoding.flags.writeable


# ---------------------------------------------------------------------- shorthand


def test_shorthand_lookups(post):
    assert post["weights", 0] is post["blocks.0.attn.weights"]
    assert post["ffn.pre", 1] is post["blocks.1.ffn.pre"]
    assert post["attn.out", 1] is post["blocks.1.attn.out"]
    assert post["q", 0] is post["blocks.0.attn.q"]
    assert post["ln2.mean", 0] is post["blocks.0.ln2.mean"]
    # A full suffix wins over a last-part match: "out" is blocks.l.out, not attn.out/ffn.out.
    assert post["out", 0] is post["blocks.0.out"]
    assert post.resolve("weights", 1) == "blocks.1.attn.weights"


def test_ambiguous_shorthand_lists_the_candidates(post):
    candidates = r"\['blocks\.0\.ln1\.mean', 'blocks\.0\.ln2\.mean'\]"
    with pytest.raises(KeyError, match=r"'mean' is ambiguous in block 0: " + candidates):
        post["mean", 0]
    with pytest.raises(KeyError, match=r"'normed' is ambiguous in block 1"):
        post["normed", 1]


def test_unknown_names_raise_key_error_naming_them(post):
    not_in = r"is not in this trace \(\d+ names; see trace\.names\(\)\)"
    with pytest.raises(KeyError, match=r"'blocks\.0\.attn\.pattern' " + not_in):
        post["blocks.0.attn.pattern"]
    similar = r"similar names: \['blocks\.0\.attn\.weights', 'blocks\.1\.attn\.weights'\]"
    with pytest.raises(KeyError, match=r"'blocks\.7\.attn\.weights' " + not_in + "; " + similar):
        post["blocks.7.attn.weights"]
    with pytest.raises(KeyError, match=r"'blocks\.0\.pattern' " + not_in):
        post["pattern", 0]
    with pytest.raises(KeyError, match=r"no block 2 in this trace \(layers: 2\)"):
        post["weights", 2]
    assert "blocks.0.attn.pattern" not in post and "blocks.0.attn.weights" in post


# ------------------------------------------------------------------ layer and head


def test_layer_holds_only_that_blocks_names(post):
    for l in range(2):
        sub = post.layer(l)
        expected = [n for n in post.names() if n.startswith(f"blocks.{l}.")]
        assert sub.names() == expected and len(expected) > 20
        for name in expected:
            assert sub[name] is post[name]
        assert sub["weights", l] is post["weights", l]
        assert sub.config is post.config


def test_head_returns_slices_of_head_h(post):
    for l, h in itertools.product(range(2), range(H)):
        head = post.head(l, h)
        assert sorted(head) == ["k", "q", "qk", "scores", "v", "weights", "z"]
        for part, value in head.items():
            full = post[f"blocks.{l}.attn.{part}"]
            np.testing.assert_array_equal(value, full[:, h])
            square = part in ("qk", "scores", "weights")
            assert value.shape == ((B, S, S) if square else (B, S, D // H))
    # head h of q is columns h*Dh:(h+1)*Dh of x W_Q + b_Q (the parameter layout)
    model = Encoder(config(), seed=0)
    _, trace = run(config())
    x, W_Q, b_Q = (
        trace["embed.out"],
        model.params["blocks.0.attn.W_Q"],
        model.params["blocks.0.attn.b_Q"],
    )
    np.testing.assert_allclose(
        trace.head(0, 2)["q"], x @ W_Q[:, 8:12] + b_Q[8:12], rtol=1e-5, atol=1e-6
    )


def test_head_on_a_filtered_trace_returns_what_was_recorded():
    _, trace = run(config(), keep=["*.attn.weights", "*.attn.z"])
    assert sorted(trace.head(1, 0)) == ["weights", "z"]


@pytest.mark.parametrize("layer, head", [(2, 0), (-1, 0), (0, 3), (0, -1), (5, 5)])
def test_out_of_range_layer_or_head_raises_index_error(post, layer, head):
    with pytest.raises(IndexError, match=r"(layer must be in \[0, 2\)|head must be in \[0, 3\))"):
        post.head(layer, head)


@pytest.mark.parametrize("layer", [2, -1, 10])
def test_out_of_range_layer_raises_index_error(post, layer):
    with pytest.raises(IndexError, match=rf"layer must be in \[0, 2\), got {layer}"):
        post.layer(layer)


# ------------------------------------------------------------- summary and nbytes


def test_summary_lists_every_name_shape_dtype_and_meaning(post):
    text = post.summary()
    lines = text.splitlines()
    meanings = {row.name: row.meaning for row in NAME_TABLE}
    for name in post.names():
        (line,) = [ln for ln in lines if ln.split()[0] == name]
        value = post[name]
        assert str(value.shape) in line and str(value.dtype) in line
        meaning = meanings[template_of(name)]
        assert meaning and line.rstrip().endswith(meaning)
    assert lines[-1].startswith(f"{len(post)} arrays, ")
    assert len(lines) == len(post) + 3  # header, rule, rows, total
    assert repr(post).startswith(f"<Trace: {len(post)} arrays")


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_nbytes_counts_each_array_once(norm):
    _, trace = run(config(norm=norm))
    by_id: dict[int, list[str]] = {}
    for name in trace:
        by_id.setdefault(id(trace[name]), []).append(name)
    assert trace.nbytes == sum(trace[names[0]].nbytes for names in by_id.values())
    # The arrays recorded under more than one name (the same object, not a copy):
    shared = sorted(names for names in by_id.values() if len(names) > 1)
    last = {"post": "ln2.out", "pre": "resid_post"}[norm]  # what the block returns
    assert shared == [
        ["blocks.0.attn.mask", "blocks.1.attn.mask"],  # one mask for every block
        # a block's output is the next block's input, resid_pre
        [f"blocks.0.{last}", "blocks.0.out", "blocks.1.resid_pre"],
        [f"blocks.1.{last}", "blocks.1.out"],
        # nothing between them without LayerNorm or dropout
        ["embed.sum", "embed.out", "blocks.0.resid_pre"],
    ]
    total = sum(trace[n].nbytes for n in trace)
    mask_bytes = B * S  # (B, 1, 1, S) bool
    assert trace.nbytes == total - mask_bytes - 5 * B * S * D * 4  # five float32 (B, S, D)


def test_n_layers_and_config(post):
    assert post.n_layers == 2 and post.config.n_layers == 2
    assert post.filter("embed.*").n_layers == 0


# ------------------------------------------------------------------- filter and keep


def test_filter_keeps_matching_names_in_order(post):
    kept = post.filter(["blocks.1.attn.weights", "embed.*", "*.ln1.std"])
    expected = [n for n in post.names() if n.startswith("embed.")]
    expected += ["blocks.0.ln1.std", "blocks.1.attn.weights", "blocks.1.ln1.std"]
    assert kept.names() == expected
    for name in expected:
        assert kept[name] is post[name]
    assert post.filter("*.attn.weights").names() == [
        "blocks.0.attn.weights",
        "blocks.1.attn.weights",
    ]


def test_filter_and_keep_with_a_pattern_that_matches_nothing_raise_value_error(post):
    with pytest.raises(ValueError, match=r"keep pattern '\*\.attn\.pattern' matches no name"):
        post.filter("*.attn.pattern")
    with pytest.raises(ValueError, match=r"keep pattern 'blocks\.0\.atn\.q' matches no name"):
        post.filter(["blocks.0.attn.q", "blocks.0.atn.q"])
    with pytest.raises(ValueError, match=r"keep pattern 'final_ln\.\*' matches no name"):
        run(config(), keep="final_ln.*")  # a post-norm model has no final LayerNorm
    with pytest.raises(ValueError, match=r"keep pattern '\*dropout_mask' matches no name"):
        run(config(), keep="*dropout_mask")  # no dropout outside training


@pytest.mark.parametrize("scale_scores", [True, False])
def test_qk_is_the_dot_products_and_scores_are_qk_scaled_as_configured(scale_scores):
    """attn.qk holds q_i . k_j (each checked by a loop) and attn.scores is qk / sqrt(Dh), or
    qk itself (the same array) when scale_scores=False: a figure can show both without
    recomputing either."""
    cfg = config(scale_scores=scale_scores, dtype="float64")
    _, trace = Encoder(cfg, seed=1).run_with_trace([[3, 1, 4, 1, 5]])
    q, k = trace["blocks.1.attn.q"], trace["blocks.1.attn.k"]
    qk, scores = trace["blocks.1.attn.qk"], trace["blocks.1.attn.scores"]
    for h, i, j in itertools.product(range(H), range(5), range(5)):
        assert qk[0, h, i, j] == pytest.approx(sum(q[0, h, i] * k[0, h, j]), rel=1e-12)
    if scale_scores:
        np.testing.assert_allclose(scores, qk / np.sqrt(cfg.d_head), rtol=1e-12)
    else:
        assert scores is qk


def test_trace_keeps_its_inputs_read_only_and_leaves_the_callers_arrays_alone():
    ids = np.array([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = np.array([[True, True, True, False], [True, True, False, False]])
    _, trace = Encoder(config(), seed=0).run_with_trace(ids, mask=mask)
    np.testing.assert_array_equal(trace.token_ids, ids)
    np.testing.assert_array_equal(trace.padding_mask, mask)
    np.testing.assert_array_equal(trace.real_tokens(1), [True, True, False, False])
    np.testing.assert_array_equal(trace.token_type_ids, np.zeros_like(ids))
    assert trace.head_mask is None and trace.patched == frozenset()
    for kept in (trace.token_ids, trace.padding_mask, trace.token_type_ids):
        assert not kept.flags.writeable
    assert ids.flags.writeable and mask.flags.writeable
    # no mask given: every token is real; filter and layer keep the inputs
    _, trace = Encoder(config(), seed=0).run_with_trace(ids)
    assert trace.real_tokens(1).all()
    np.testing.assert_array_equal(trace.filter("*.weights").token_ids, ids)
    np.testing.assert_array_equal(trace.layer(1).padding_mask, np.ones((2, 4), bool))


def test_trace_names_what_was_patched():
    model = Encoder(config(), seed=0)
    patch = {"blocks.0.attn.scores": lambda s: 2 * s}
    _, trace = model.run_with_trace([[1, 2, 3]], patch=patch)
    assert trace.patched == {"blocks.0.attn.scores"}
    assert trace.filter("*.weights").patched == frozenset()
    _, trace = model.run_with_trace([[1, 2, 3]], patch=patch, head_mask=np.ones((2, H)))
    np.testing.assert_array_equal(trace.head_mask, np.ones((2, H)))
