"""BERT's WordPiece tokenizer: from text to the token ids an encoder reads.

BERT (Devlin et al. 2019) reads text as *word pieces*: frequent words are one piece
(``"attention"``), rarer words are split into a first piece and continuation pieces marked
``##`` (``"tokenization" -> "token", "##ization"``). The tokenizer runs four steps, each a
public function here so a tutorial can show them one at a time::

    "Héllo, 中文 tokenizers!"
      │ normalize:    clean_text -> space_chinese_chars -> remove_accents -> lower_case
    "hello,  中  文  tokenizers!"
      │ pre_tokenize: split at whitespace; every punctuation mark becomes a word of its own
    ["hello", ",", "中", "文", "tokenizers", "!"]
      │ wordpiece:    greedy longest-match-first pieces from the vocabulary, word by word
    ["hello", ",", "中", "文", "token", "##izer", "##s", "!"]
      │ encode:       [CLS] A [SEP] (B [SEP]), truncate, look up ids; a batch is padded
    [101, 7592, 1010, 1746, 1861, 19204, 17629, 2015, 999, 102]

The behaviour is that of the Hugging Face ``tokenizers`` library (``BertNormalizer``,
``BertPreTokenizer``, ``WordPiece``, BERT's ``TemplateProcessing`` and ``LongestFirst``
truncation), which ``transformers.AutoTokenizer`` uses for BERT models; the test suite compares
the two on every Unicode code point and on a large varied corpus. Where ``tokenizers`` and the
original Python code of BERT (``tokenization.py`` of google-research/bert, once
``transformers.BertTokenizer``) disagree, this module follows ``tokenizers``: unassigned code
points are kept (not deleted), the line and paragraph separators U+2028/U+2029 are whitespace,
a word-final capital sigma becomes ``σ`` (not ``ς``), the CJK ideographs U+2B820-U+2B91F are not
split, and characters added to Unicode after version 8.0 are classified as ``tokenizers`` does
(see :func:`unicode_category`).

The special tokens (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]``, ``[UNK]``) typed literally
in the text are kept whole, as ``tokenizers`` does: ``"the [MASK] sat"`` gives the mask token.

Every step takes time linear in the length of the text, whatever the text: the special tokens
are found in one pass, and :func:`wordpiece` never tries a piece longer than the longest
vocabulary entry.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from minitransformer import _unicode_tables
from minitransformer.file_checks import read_json_file, read_lines, short_repr

# ------------------------------------------------------------------------------------------
# Character classes


# Unicode's White_Space characters: tab, newline, vertical tab, form feed, carriage return,
# space, next line, no-break space, ogham space mark, the typographic spaces U+2000-U+200A,
# line and paragraph separators, narrow no-break space, medium mathematical space, ideographic
# space.
WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# The CJK Unified Ideographs blocks (and the compatibility ideographs) that BERT splits into
# one word per character, as inclusive code-point ranges. Japanese kana and Korean Hangul are
# NOT in these blocks: they are split into words by whitespace like Latin script.
CHINESE_CHAR_RANGES = (
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0x3400, 0x4DBF),  # Extension A
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2B73F),  # Extension C
    (0x2B740, 0x2B81F),  # Extension D
    (0x2B920, 0x2CEAF),  # Extension E (from U+2B920, as in `tokenizers`)
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x2F800, 0x2FA1F),  # CJK Compatibility Ideographs Supplement
)


def unicode_category(char: str) -> str:
    """The Unicode general category of ``char`` (``"Lu"``, ``"Mn"``, ``"Po"``, ...), as the
    ``tokenizers`` library sees it.

    This is ``unicodedata.category(char)``, except for about 500 rare characters (marks and
    punctuation added to Unicode after 2015) that ``tokenizers`` does not know: for them it
    answers ``"Cn"`` (unassigned), see :mod:`minitransformer._unicode_tables`.
    """
    code = ord(char)
    if code in _unicode_tables.UNICODE_8_CATEGORY:
        return _unicode_tables.UNICODE_8_CATEGORY[code]
    if code in _unicode_tables.ADDED_AFTER_UNICODE_8:
        return "Cn"
    return unicodedata.category(char)


def is_whitespace(char: str) -> bool:
    """True for characters that separate words: space, tab, newline, no-break space, ..."""
    return char in WHITESPACE


def is_control(char: str) -> bool:
    """True for characters :func:`clean_text` deletes.

    Those of the categories control (Cc), format (Cf, e.g. the zero-width joiner U+200D),
    private use (Co) and surrogate (Cs) -- except tab, newline and carriage return, which count
    as whitespace. Unassigned code points (Cn) are kept.
    """
    if char in "\t\n\r":
        return False
    return unicode_category(char) in ("Cc", "Cf", "Co", "Cs")


def is_punctuation(char: str) -> bool:
    """True for characters that become a word of their own.

    All ASCII symbols ``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~`` (code points 33-47, 58-64, 91-96,
    123-126; BERT counts ``$``, ``+``, ``<`` ... as punctuation although Unicode calls them
    symbols) and every character of a Unicode punctuation category ``P*``.
    """
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicode_category(char).startswith("P")


def is_chinese_char(char: str) -> bool:
    """True for a CJK ideograph (see :data:`CHINESE_CHAR_RANGES`)."""
    code = ord(char)
    for first, last in CHINESE_CHAR_RANGES:
        if first <= code <= last:
            return True
    return False


# ------------------------------------------------------------------------------------------
# Step 1: normalize


def clean_text(text: str) -> str:
    """Delete NUL, U+FFFD (the replacement character) and control characters; turn every
    whitespace character into a plain space ``" "``."""
    kept = []
    for char in text:
        if char == "\x00" or char == "\ufffd" or is_control(char):
            continue
        kept.append(" " if is_whitespace(char) else char)
    return "".join(kept)


def space_chinese_chars(text: str) -> str:
    """Put a space on both sides of every CJK ideograph, so each becomes a word of its own.

    Chinese is written without spaces; BERT's vocabulary holds single ideographs.
    """
    spaced = []
    for char in text:
        spaced.append(f" {char} " if is_chinese_char(char) else char)
    return "".join(spaced)


def nfd(text: str) -> str:
    """Unicode canonical decomposition (NFD): ``"é"`` becomes ``"e"`` + U+0301 (combining acute).

    This is ``unicodedata.normalize("NFD", text)``, except that about 100 combining characters
    added to Unicode after 2016, which ``tokenizers`` does not know, are left in place: the text
    is decomposed in runs between them.
    """
    runs = []
    start = 0  # start of the run being read
    for position, char in enumerate(text):
        if ord(char) in _unicode_tables.NFD_AFTER_UNICODE_9:
            runs.append(unicodedata.normalize("NFD", text[start:position]))
            runs.append(char)
            start = position + 1
    runs.append(unicodedata.normalize("NFD", text[start:]))
    return "".join(runs)


def remove_accents(text: str) -> str:
    """Strip accents: decompose (:func:`nfd`, ``"é" -> "e" + U+0301``), then drop the
    non-spacing marks (category Mn), so ``"café" -> "cafe"``."""
    return "".join(char for char in nfd(text) if unicode_category(char) != "Mn")


def lower_case(text: str) -> str:
    """Lower-case character by character (``"İ"`` becomes two characters, ``"i"`` + U+0307).

    Unlike ``str.lower`` this ignores context: a word-final ``"Σ"`` becomes ``"σ"``, not ``"ς"``.
    Letters newer than Python's Unicode tables are lowered as ``tokenizers`` does.
    """
    lowered = []
    for char in text:
        code = ord(char)
        if code in _unicode_tables.LOWERCASE_AFTER_UNICODE_14:
            lowered.append(chr(_unicode_tables.LOWERCASE_AFTER_UNICODE_14[code]))
        else:
            lowered.append(char.lower())
    return "".join(lowered)


def normalize(
    text: str,
    *,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    tokenize_chinese_chars: bool = True,
) -> str:
    """BERT's text normalization, in the order of ``tokenizers.normalizers.BertNormalizer``.

    Parameters
    ----------
    text : str
    lowercase : bool
        Lower-case the text (uncased vocabularies such as ``bert-base-uncased``).
    strip_accents : bool or None
        Remove accents; ``None`` means "do so when ``lowercase`` is True".
    tokenize_chinese_chars : bool
        Make every CJK ideograph a word of its own.

    Returns
    -------
    str
    """
    if strip_accents is None:
        strip_accents = lowercase  # uncased vocabularies have no accents either
    text = clean_text(text)
    if tokenize_chinese_chars:
        text = space_chinese_chars(text)
    if strip_accents:
        text = remove_accents(text)
    if lowercase:
        text = lower_case(text)
    return text


# ------------------------------------------------------------------------------------------
# Step 2: pre-tokenize


def pre_tokenize(text: str) -> list[str]:
    """Split normalized text into words: at whitespace (which is dropped), and around every
    punctuation character (which is kept as a word of its own).

    >>> pre_tokenize("don't stop!")
    ['don', "'", 't', 'stop', '!']
    """
    words: list[str] = []
    current: list[str] = []  # characters of the word being read
    for char in text:
        if is_whitespace(char) or is_punctuation(char):
            if current:
                words.append("".join(current))
                current = []
            if not is_whitespace(char):
                words.append(char)
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


# ------------------------------------------------------------------------------------------
# Step 3: word pieces


def wordpiece(
    word: str,
    vocab: Mapping[str, int] | set[str],
    *,
    unk_token: str = "[UNK]",
    max_input_chars_per_word: int = 100,
    prefix: str = "##",
    longest_piece: int | None = None,
) -> list[str]:
    """Split one word into vocabulary pieces, greedily taking the longest match first.

    From the start of the word, take the longest prefix that is in the vocabulary; then, from
    where it ended, the longest ``"##"``-prefixed continuation; and so on to the end. If at some
    point no piece matches, the whole word becomes ``[UNK]`` (not just the missing piece).
    Words longer than ``max_input_chars_per_word`` characters are ``[UNK]`` directly.

    No candidate is longer than ``longest_piece``, the length of the longest vocabulary entry
    (computed from ``vocab`` when not given): a longer one cannot be in the vocabulary. So each
    position tries at most ``longest_piece`` candidates, and the time grows linearly with the
    length of the word instead of quadratically.

    >>> wordpiece("unaffable", {"un", "##aff", "##able"})
    ['un', '##aff', '##able']
    """
    if len(word) > max_input_chars_per_word:
        return [unk_token]
    if longest_piece is None:
        longest_piece = max(map(len, vocab), default=0)
    pieces = []
    start = 0
    while start < len(word):
        piece = None
        longest_end = min(len(word), start + longest_piece)
        for end in range(longest_end, start, -1):  # longest candidate first
            candidate = word[start:end] if start == 0 else prefix + word[start:end]
            if candidate in vocab:
                piece = candidate
                break
        if piece is None:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


def split_on_special_tokens(text: str, special_tokens: Sequence[str]) -> list[str]:
    """Cut ``text`` around literal occurrences of the special tokens (leftmost first, the
    longest one when several start at the same place). Empty pieces are dropped.

    One scan of the text with a regular expression ``token_1|token_2|...``: it finds the
    leftmost occurrence, and at one place takes the first alternative that matches, so the
    tokens are listed longest first.

    >>> split_on_special_tokens("the [MASK] sat", ["[MASK]"])
    ['the ', '[MASK]', ' sat']
    """
    if "" in special_tokens:
        raise ValueError("special_tokens must not hold the empty string (it occurs everywhere)")
    if not special_tokens:
        return [text] if text else []
    longest_first = sorted(special_tokens, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(token) for token in longest_first))
    pieces = []
    start = 0  # start of the text not yet cut
    for match in pattern.finditer(text):
        if match.start() > start:
            pieces.append(text[start : match.start()])
        pieces.append(match.group())
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


# ------------------------------------------------------------------------------------------
# Step 4: special tokens, truncation, padding


def truncate_longest_first(
    tokens_a: list[str], tokens_b: list[str] | None, max_tokens: int
) -> tuple[list[str], list[str] | None]:
    """Cut a pair of token lists to at most ``max_tokens`` tokens in total, from the right.

    The longer sequence is cut first, down to the length of the shorter one; if both must be
    cut further they get half of ``max_tokens`` each (the one that was longer -- or ``tokens_b``
    when they were equally long -- gets the odd token). This is ``LongestFirst`` truncation of
    ``tokenizers``. A single sequence (``tokens_b=None``) is simply cut to ``max_tokens``.
    """
    if tokens_b is None:
        return tokens_a[:max_tokens], None
    n_a, n_b = len(tokens_a), len(tokens_b)
    if n_a + n_b <= max_tokens:
        return tokens_a, tokens_b
    short = min(n_a, n_b)
    if 2 * short <= max_tokens:  # the shorter one fits whole, the longer one gets the rest
        keep_short, keep_long = short, max_tokens - short
    else:  # both are cut to half
        keep_short, keep_long = max_tokens // 2, max_tokens // 2 + max_tokens % 2
    if n_a > n_b:
        return tokens_a[:keep_long], tokens_b[:keep_short]
    return tokens_a[:keep_short], tokens_b[:keep_long]


@dataclass
class Encoding:
    """One encoded text (or pair of texts), before padding.

    Attributes
    ----------
    tokens : list of str
        The word pieces, with the special tokens: ``[CLS] A [SEP] (B [SEP])``.
    input_ids : list of int
        Their ids in the vocabulary.
    token_type_ids : list of int
        0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]`` (BERT's segment A / segment B).
    """

    tokens: list[str]
    input_ids: list[int]
    token_type_ids: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class BatchEncoding:
    """A batch of encoded texts, padded to one length S, ready for ``Encoder``.

    Attributes
    ----------
    input_ids : ndarray of int64, shape (batch, seq)
        Token ids; padding positions hold the id of ``[PAD]``.
    attention_mask : ndarray of int64, shape (batch, seq)
        1 for real tokens, 0 for padding (the ``mask`` argument of ``Encoder``).
    token_type_ids : ndarray of int64, shape (batch, seq)
        Segment of each token (0 for padding).
    tokens : list of list of str
        The tokens of each row, ``[PAD]`` included, to label figures.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    tokens: list[list[str]]

    def __len__(self) -> int:
        return len(self.tokens)


# ------------------------------------------------------------------------------------------
# The tokenizer


class WordPieceTokenizer:
    """BERT's tokenizer: normalize, pre-tokenize, word pieces, special tokens, ids.

    Parameters
    ----------
    vocab : mapping of token -> id, or sequence of tokens (the id is the position)
        The vocabulary; it must contain the five special tokens.
    do_lower_case : bool
        Lower-case the text (True for "uncased" models).
    strip_accents : bool or None
        Remove accents; None follows ``do_lower_case``.
    tokenize_chinese_chars : bool
        Make each CJK ideograph a word of its own.
    unk_token, cls_token, sep_token, pad_token, mask_token : str
        The special tokens.
    model_max_length : int
        Longest sequence the model reads; the default ``max_length`` of :meth:`encode`.
    max_input_chars_per_word : int
        Longer words become ``[UNK]`` without trying to split them.

    Examples
    --------
    >>> tok = WordPieceTokenizer.from_dir(model_dir)  # doctest: +SKIP
    >>> tok.tokenize("Tokenization is fun!")  # doctest: +SKIP
    ['token', '##ization', 'is', 'fun', '!']
    >>> batch = tok(["a short text", "a longer text, with a comma"])  # doctest: +SKIP
    >>> batch.input_ids.shape  # doctest: +SKIP
    (2, 10)
    """

    def __init__(
        self,
        vocab: Mapping[str, int] | Sequence[str],
        *,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        unk_token: str = "[UNK]",
        cls_token: str = "[CLS]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        mask_token: str = "[MASK]",
        model_max_length: int = 512,
        max_input_chars_per_word: int = 100,
    ) -> None:
        self.vocab = _vocab_dict(vocab)
        self.ids_to_tokens = {i: token for token, i in self.vocab.items()}
        self.longest_piece = max(map(len, self.vocab), default=0)  # bounds wordpiece's search
        for name, value in (
            ("do_lower_case", do_lower_case),
            ("tokenize_chinese_chars", tokenize_chinese_chars),
        ):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        if strip_accents is not None and not isinstance(strip_accents, bool):
            raise TypeError(f"strip_accents must be True, False or None, got {strip_accents!r}")
        self.do_lower_case = do_lower_case
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        specials = {
            "unk_token": unk_token,
            "cls_token": cls_token,
            "sep_token": sep_token,
            "pad_token": pad_token,
            "mask_token": mask_token,
        }
        for name, token in specials.items():
            if not isinstance(token, str) or token == "":
                raise TypeError(f"{name} must be a non-empty str, got {short_repr(token)}")
        self.unk_token = unk_token
        self.cls_token = cls_token
        self.sep_token = sep_token
        self.pad_token = pad_token
        self.mask_token = mask_token
        self.special_tokens = (unk_token, cls_token, sep_token, pad_token, mask_token)
        missing = [token for token in self.special_tokens if token not in self.vocab]
        if missing:
            raise ValueError(f"vocab must contain the special tokens; missing: {missing}")
        self.model_max_length = _positive_int(model_max_length, "model_max_length")
        self.max_input_chars_per_word = _positive_int(
            max_input_chars_per_word, "max_input_chars_per_word"
        )

    @classmethod
    def from_dir(cls, path: str | Path) -> WordPieceTokenizer:
        """Load the tokenizer of a Hugging Face BERT model directory.

        Reads ``vocab.txt`` (one token per line, id = line number) with the options of
        ``tokenizer_config.json`` and ``special_tokens_map.json`` when present; a directory
        with only ``tokenizer.json`` works too. Every field read is type-checked: a file with,
        say, ``"do_lower_case": "false"`` (a string) raises ``ValueError`` naming the file and
        the field, as does a token listed twice in the vocabulary or a line that is not UTF-8.
        """
        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(f"path must be a model directory, got {str(path)!r}")
        if (directory / "vocab.txt").is_file():
            return cls._from_vocab_txt(directory)
        if (directory / "tokenizer.json").is_file():
            return cls._from_tokenizer_json(directory / "tokenizer.json")
        raise FileNotFoundError(
            f"no tokenizer in {str(directory)!r}: expected vocab.txt (with an optional "
            f"tokenizer_config.json) or tokenizer.json"
        )

    @classmethod
    def _from_vocab_txt(cls, directory: Path) -> WordPieceTokenizer:
        vocab_file = directory / "vocab.txt"
        lines = read_lines(vocab_file)
        first_line: dict[str, int] = {}  # token -> the line (from 1) that lists it first
        for number, token in enumerate(lines, start=1):
            if token in first_line:
                raise ValueError(
                    f"{vocab_file}: line {number} repeats the token {short_repr(token)} of line "
                    f"{first_line[token]} (each token must have one id)"
                )
            first_line[token] = number
        kwargs: dict[str, Any] = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the second wins
            file = directory / name
            if file.is_file():
                options = _json_object(file)
                kwargs.update(_options(file, options, TOKENIZER_CONFIG_FIELDS))
                for key in SPECIAL_TOKEN_FIELDS:
                    if options.get(key) is not None:
                        kwargs[key] = _special_token(file, key, options[key])
        return _made_from(vocab_file, lambda: cls(lines, **kwargs))

    @classmethod
    def _from_tokenizer_json(cls, file: Path) -> WordPieceTokenizer:
        spec = _json_object(file)
        parts = [spec.get(part) for part in ("model", "normalizer", "pre_tokenizer")]
        found = tuple(part.get("type") if isinstance(part, dict) else None for part in parts)
        if found != ("WordPiece", "BertNormalizer", "BertPreTokenizer"):
            raise ValueError(
                f"{file} is not a BERT WordPiece tokenizer: expected model, normalizer and "
                f"pre_tokenizer types ('WordPiece', 'BertNormalizer', 'BertPreTokenizer'), "
                f"got {short_repr(found)}"
            )
        model, normalizer = spec["model"], spec["normalizer"]  # objects: their "type" matched
        if model.get("continuing_subword_prefix", "##") != "##" or (
            normalizer.get("clean_text", True) is not True
        ):
            raise ValueError(f"{file}: only the '##' prefix and clean_text=true are supported")
        if not isinstance(model.get("vocab"), dict):
            raise ValueError(
                f"{file}: field 'model.vocab' must be an object token -> id, got "
                f"{short_repr(model.get('vocab'))}"
            )
        kwargs = _options(file, normalizer, TOKENIZER_JSON_NORMALIZER_FIELDS, "normalizer.")
        kwargs.update(_options(file, model, TOKENIZER_JSON_MODEL_FIELDS, "model."))
        if "unk_token" in model:
            kwargs["unk_token"] = _special_token(file, "model.unk_token", model["unk_token"])
        return _made_from(file, lambda: cls(model["vocab"], **kwargs))

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary (rows of the embedding matrix ``W_E``)."""
        return len(self.vocab)

    # -------------------------------------------------------------------- the steps

    def normalize(self, text: str) -> str:
        """Step 1, :func:`normalize` with this tokenizer's options."""
        return normalize(
            _check_text(text, "text"),
            lowercase=self.do_lower_case,
            strip_accents=self.strip_accents,
            tokenize_chinese_chars=self.tokenize_chinese_chars,
        )

    def basic_tokenize(self, text: str) -> list[str]:
        """Steps 1 and 2: normalize, then split into words (:func:`pre_tokenize`)."""
        return pre_tokenize(self.normalize(text))

    def tokenize(self, text: str) -> list[str]:
        """Steps 1-3: the word pieces of ``text``, without ``[CLS]``/``[SEP]``.

        Special tokens typed in the text (``"[MASK]"``) are kept as they are.
        """
        tokens = []
        for piece in split_on_special_tokens(_check_text(text, "text"), self.special_tokens):
            if piece in self.special_tokens:
                tokens.append(piece)
                continue
            for word in self.basic_tokenize(piece):
                tokens.extend(
                    wordpiece(
                        word,
                        self.vocab,
                        unk_token=self.unk_token,
                        max_input_chars_per_word=self.max_input_chars_per_word,
                        longest_piece=self.longest_piece,
                    )
                )
        return tokens

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; a token not in the vocabulary gets the id of ``[UNK]``."""
        unk_id = self.vocab[self.unk_token]
        return [self.vocab.get(token, unk_id) for token in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Tokens of ``ids``; an id that is not an integer raises ``TypeError``, one outside
        the vocabulary ``ValueError``."""
        array = np.asarray(ids)
        if array.size == 0:
            return []
        if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"ids must be integers, got an array of dtype {array.dtype}")
        tokens = []
        for i in array.ravel().tolist():
            if i not in self.ids_to_tokens:
                raise ValueError(
                    f"ids must be in [0, {self.vocab_size}) (the vocabulary), got {i!r}"
                )
            tokens.append(self.ids_to_tokens[i])
        return tokens

    # -------------------------------------------------------------------- encoding

    def encode(
        self,
        text: str,
        text_pair: str | None = None,
        *,
        add_special_tokens: bool = True,
        truncation: bool = True,
        max_length: int | None = None,
    ) -> Encoding:
        """Tokens, ids and token types of one text or one pair of texts.

        Parameters
        ----------
        text : str
        text_pair : str, optional
            A second segment (question/answer, premise/hypothesis, ...).
        add_special_tokens : bool
            Build ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``.
        truncation : bool
            Cut inputs longer than ``max_length`` tokens (special tokens included), the
            longer segment of a pair first (:func:`truncate_longest_first`). With False, a
            too long input raises ``ValueError``.
        max_length : int, optional
            Defaults to ``model_max_length``.

        Returns
        -------
        Encoding
        """
        tokens_a = self.tokenize(_check_text(text, "text"))
        tokens_b = None if text_pair is None else self.tokenize(_check_text(text_pair, "text_pair"))
        limit = self._max_length(max_length)
        n_special = 0 if not add_special_tokens else 2 if tokens_b is None else 3
        total = len(tokens_a) + len(tokens_b or []) + n_special
        if total > limit:
            if not truncation:
                raise ValueError(
                    f"the input is {total} tokens long ({n_special} special tokens included), "
                    f"more than max_length={limit}; pass truncation=True to cut it"
                )
            if limit < n_special:
                raise ValueError(
                    f"max_length={limit} leaves no room for the {n_special} special tokens"
                )
            tokens_a, tokens_b = truncate_longest_first(tokens_a, tokens_b, limit - n_special)
        if add_special_tokens:
            tokens_a = [self.cls_token, *tokens_a, self.sep_token]
            if tokens_b is not None:
                tokens_b = [*tokens_b, self.sep_token]
        tokens = tokens_a + (tokens_b or [])
        token_type_ids = [0] * len(tokens_a) + [1] * len(tokens_b or [])
        return Encoding(tokens, self.convert_tokens_to_ids(tokens), token_type_ids)

    def __call__(
        self,
        texts: str | Sequence[str],
        text_pairs: str | Sequence[str] | None = None,
        *,
        padding: bool | str = True,
        truncation: bool = True,
        max_length: int | None = None,
    ) -> BatchEncoding:
        """Encode a batch of texts (or of text pairs) into padded arrays.

        Parameters
        ----------
        texts : str or sequence of str
            One text is a batch of one.
        text_pairs : str or sequence of str, optional
            The second segment of each text, as many as ``texts``.
        padding : True, "longest", "max_length" or False
            True / "longest": pad every row with ``[PAD]`` to the longest row;
            "max_length": to ``max_length`` (default ``model_max_length``); False: no padding
            (then all rows must have the same length).
        truncation, max_length :
            As in :meth:`encode`.

        Returns
        -------
        BatchEncoding
            ``input_ids``, ``attention_mask`` and ``token_type_ids`` of shape (batch, seq).
        """
        texts = _check_texts(texts, "texts")
        pairs: list[str | None] = [None] * len(texts)
        if text_pairs is not None:
            pairs = list(_check_texts(text_pairs, "text_pairs"))
            if len(pairs) != len(texts):
                raise ValueError(
                    f"text_pairs must hold one text per text: got {len(texts)} texts and "
                    f"{len(pairs)} text_pairs"
                )
        if padding not in (True, False, "longest", "max_length"):
            raise ValueError(
                f"padding must be True, False, 'longest' or 'max_length', got {padding!r}"
            )
        encodings = [
            self.encode(text, pair, truncation=truncation, max_length=max_length)
            for text, pair in zip(texts, pairs, strict=True)
        ]
        lengths = [len(encoding) for encoding in encodings]
        if padding == "max_length":
            seq = self._max_length(max_length)
        elif padding:
            seq = max(lengths)
        elif len(set(lengths)) > 1:
            raise ValueError(
                f"with padding=False all texts must give the same number of tokens, got "
                f"lengths {lengths}; use padding=True"
            )
        else:
            seq = lengths[0]
        pad_id = self.vocab[self.pad_token]
        B = len(encodings)
        input_ids = np.full((B, seq), pad_id, dtype=np.int64)
        attention_mask = np.zeros((B, seq), dtype=np.int64)
        token_type_ids = np.zeros((B, seq), dtype=np.int64)
        tokens = []
        for row, encoding in enumerate(encodings):
            n = len(encoding)
            input_ids[row, :n] = encoding.input_ids
            attention_mask[row, :n] = 1
            token_type_ids[row, :n] = encoding.token_type_ids
            tokens.append(encoding.tokens + [self.pad_token] * (seq - n))
        return BatchEncoding(input_ids, attention_mask, token_type_ids, tokens)

    def _max_length(self, max_length: int | None) -> int:
        if max_length is None:
            return self.model_max_length
        return _positive_int(max_length, "max_length")

    def __repr__(self) -> str:
        return (
            f"WordPieceTokenizer(vocab_size={self.vocab_size}, "
            f"do_lower_case={self.do_lower_case}, model_max_length={self.model_max_length})"
        )


# ------------------------------------------------------------------------------------------
# Checks on arguments


def _vocab_dict(vocab: Mapping[str, int] | Sequence[str]) -> dict[str, int]:
    """The vocabulary as a dict token -> id, checked: string tokens, distinct int ids."""
    if isinstance(vocab, Mapping):
        items = list(vocab.items())
    elif isinstance(vocab, Sequence) and not isinstance(vocab, str):
        items = [(token, i) for i, token in enumerate(vocab)]
    else:
        raise TypeError(
            f"vocab must be a mapping token -> id or a sequence of tokens, got "
            f"{type(vocab).__name__}"
        )
    for token, i in items:
        if not isinstance(token, str) or isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(
                f"vocab must map str tokens to int ids, got {token!r}: {i!r} "
                f"({type(token).__name__}: {type(i).__name__})"
            )
    result: dict[str, int] = {}
    owner: dict[int, str] = {}  # id -> token
    for token, i in items:
        if token in result:
            raise ValueError(f"vocab must list each token once, got {token!r} twice")
        if i in owner:
            raise ValueError(
                f"vocab must give each token its own id, got id {i} for {owner[i]!r} and {token!r}"
            )
        result[token], owner[i] = i, token
    return result


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def _check_text(text: Any, name: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return text


def _check_texts(texts: Any, name: str) -> list[str]:
    """A str, or a non-empty sequence of str, as a list."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)):  # a Sequence of ints: refuse it as a whole
        raise TypeError(
            f"{name} must be a str or a sequence of str, got {type(texts).__name__}; decode it "
            "first, e.g. data.decode('utf-8')"
        )
    if not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a str or a sequence of str, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{name} must hold at least one text, got an empty sequence")
    for i, text in enumerate(texts):
        _check_text(text, f"{name}[{i}]")
    return list(texts)


# ------------------------------------------------------------------------------------------
# Reading the options of a model directory


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_bool_or_none(value: Any) -> bool:
    return value is None or isinstance(value, bool)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# field in the file -> (keyword of WordPieceTokenizer, check, what the check expects)
Field = tuple[str, Callable[[Any], bool], str]
TOKENIZER_CONFIG_FIELDS: dict[str, Field] = {
    "do_lower_case": ("do_lower_case", _is_bool, "true or false"),
    "strip_accents": ("strip_accents", _is_bool_or_none, "true, false or null"),
    "tokenize_chinese_chars": ("tokenize_chinese_chars", _is_bool, "true or false"),
    "model_max_length": ("model_max_length", _is_positive_int, "an integer >= 1"),
}
TOKENIZER_JSON_NORMALIZER_FIELDS: dict[str, Field] = {
    "lowercase": ("do_lower_case", _is_bool, "true or false"),
    "strip_accents": ("strip_accents", _is_bool_or_none, "true, false or null"),
    "handle_chinese_chars": ("tokenize_chinese_chars", _is_bool, "true or false"),
}
TOKENIZER_JSON_MODEL_FIELDS: dict[str, Field] = {
    "max_input_chars_per_word": ("max_input_chars_per_word", _is_positive_int, "an integer >= 1"),
}
SPECIAL_TOKEN_FIELDS = ("unk_token", "cls_token", "sep_token", "pad_token", "mask_token")


def _json_object(file: Path) -> dict[str, Any]:
    value = read_json_file(file)
    if not isinstance(value, dict):
        raise ValueError(f"{file}: must hold a JSON object, got {type(value).__name__}")
    return value


def _options(
    file: Path, found: dict[str, Any], fields: dict[str, Field], prefix: str = ""
) -> dict[str, Any]:
    """The keyword arguments that ``fields`` name, from the options ``found`` in ``file``."""
    kwargs = {}
    for key, (keyword, check, expected) in fields.items():
        if key in found:
            if not check(found[key]):
                raise ValueError(
                    f"{file}: field {prefix + key!r} must be {expected}, got "
                    f"{short_repr(found[key])} ({type(found[key]).__name__})"
                )
            kwargs[keyword] = found[key]
    return kwargs


def _special_token(file: Path, key: str, value: Any) -> str:
    """A special token written as a string, or as ``{"content": "[UNK]", ...}`` (an
    ``AddedToken`` of ``transformers``)."""
    token = value.get("content") if isinstance(value, dict) else value
    if not isinstance(token, str) or token == "":
        raise ValueError(
            f"{file}: field {key!r} must be a non-empty string or an object with a non-empty "
            f"string 'content', got {short_repr(value)}"
        )
    return token


def _made_from(file: Path, make: Callable[[], WordPieceTokenizer]) -> WordPieceTokenizer:
    """``make()``, with any error about the vocabulary or the options prefixed by ``file``."""
    try:
        return make()
    except (TypeError, ValueError) as error:
        raise ValueError(f"{file}: {error}") from None
