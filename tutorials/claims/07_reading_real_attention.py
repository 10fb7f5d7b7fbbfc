"""Claims the prose of notebook 07 makes about its own output (format: claims/00_quick_start.py)."""

CLAIMS = [
    {
        "quote": "Layer 0, head 2 puts almost *all* of its attention on the previous token, for "
        "every query",
        "cell": "l0h2",
        "read": r"weight on the previous token at least (?P<least>[\d.]+)",
        "holds": "least > 0.9",
    },
    {
        "quote": "MiniLM's prefer `[CLS]`, almost all of them",
        "cell": "sinks",
        "read": r"more weight on \[CLS\] than on \[SEP\]: (?P<count>\d+) of 72",
        "holds": "count >= 65",
    },
    {
        "quote": "For a previous-token head, each query is joined to the key of the token "
        "*before* it",
        "cell": "qk",
        "read": r"every query but the first reads the token before it: (?P<all>True|False)",
        "holds": "all",
    },
    {
        "quote": "A head with a real positional job keeps its score",
        "cell": "other-inputs",
        "read": r"(?P<a>[\d.]+) of at most (?P<ma>[\d.]+): head 0.2 on 'A man.*\n"
        r"(?P<b>[\d.]+) of at most (?P<mb>[\d.]+): .*\n"
        r"(?P<c>[\d.]+) of at most (?P<mc>[\d.]+): .*\n"
        r"(?P<d>[\d.]+) of at most (?P<md>[\d.]+): ",
        "holds": "min(a - ma, b - mb, c - mc, d - md) > -0.03",
    },
]
