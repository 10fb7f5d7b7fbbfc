"""Claims the prose of notebook 05 makes about its own output (format: claims/00_quick_start.py)."""

CLAIMS = [
    {
        "quote": "In the post-norm stack each block ends in a LayerNorm, so the norms stay put",
        "cell": "norm-growth",
        "read": r"post-norm: mean \|x\| after block 0 (?P<first>[\d.]+), after block 7 "
        r"(?P<last>[\d.]+)",
        "holds": "abs(last - first) < 0.1",
    },
    {
        "quote": "in the pre-norm stack nothing rescales the stream, and it grows block after "
        "block",
        "cell": "norm-growth",
        "read": r"pre-norm: mean \|x\| after block 0 (?P<first>[\d.]+), after block 7 "
        r"(?P<last>[\d.]+)",
        "holds": "last > 1.5 * first",
    },
    {
        "quote": "Attention writes small corrections, in every layer smaller than the stream",
        "cell": "sublayer-sizes",
        "read": r"attention smaller than the stream in every layer: (?P<smaller>True|False)",
        "holds": "smaller",
    },
    {
        "quote": "in some layers larger than the stream itself",
        "cell": "sublayer-sizes",
        "read": r"FFN larger in layers \[(?P<first>\d+)",
        "holds": "first >= 0",
    },
    {
        "quote": "`mystery_block` below is a post-norm block with one bug",
        "cell": "mystery",
        "read": r"the mystery block's output is the trace's blocks.0.out: (?P<same>True|False)",
        "holds": "not same",
    },
]
