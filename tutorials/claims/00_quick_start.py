"""Claims the prose of notebook 00 makes about its own output (checked by tests/test_notebooks.py).

Each claim: ``quote``, words of a markdown cell (whitespace-insensitive) that make the claim;
``cell``, the id of the code cell whose printed output backs it; ``read``, a regular
expression whose named groups are read as numbers from that output; ``holds``, a Python
expression over those numbers that must be true.
"""

CLAIMS = [
    {
        "quote": "Layer 0, head 2 is a **previous-token head**",
        "cell": "previous-head",
        "read": r"mean weight on the previous token (?P<previous>[\d.]+)",
        "holds": "previous > 0.95",
    },
    {
        "quote": "which earlier token does it read most?",
        "cell": "it-reads",
        "read": r"'it' reads most: cat \((?P<it>[\d.]+) of its weight\)",
        "holds": "it > 0.3",
    },
    {
        "quote": "the row of the first **the** lights up at *cat* even more",
        "cell": "it-reads",
        "read": r"\((?P<it>[\d.]+) of its weight\)\nthe first 'the' puts (?P<the>[\d.]+)",
        "holds": "the > it",
    },
    {
        "quote": "the two sentences about a guitar score far higher with each other than either "
        "does with the stock market, which is close to 0",
        "cell": "similarity",
        "read": r"paraphrases (?P<pair>-?[\d.]+); unrelated (?P<a>-?[\d.]+) and (?P<b>-?[\d.]+)",
        "holds": "pair > 0.4 and abs(a) < 0.15 and abs(b) < 0.15",
    },
]
