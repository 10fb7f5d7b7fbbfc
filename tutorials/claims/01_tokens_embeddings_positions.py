"""Claims the prose of notebook 01 makes about its own output (format: claims/00_quick_start.py)."""

CLAIMS = [
    {
        "quote": "So the dot product of two positions depends only on their distance",
        "cell": "distance-only",
        "read": r"PE\[0\] \. PE\[5\] = (?P<a>-?[\d.]+)\nPE\[50\] \. PE\[55\] = (?P<b>-?[\d.]+)\n"
        r"PE\[120\] \. PE\[125\] = (?P<c>-?[\d.]+)",
        "holds": "abs(a - b) < 1e-5 and abs(a - c) < 1e-5",
    },
    {
        "quote": "training discovered that neighbouring positions should look alike",
        "cell": "learned-positions",
        "read": r"mean cosine of neighbouring positions (?P<neighbours>[\d.]+)",
        "holds": "neighbours > 0.7",
    },
    {
        "quote": "the similarity rises again every few positions",
        "cell": "learned-positions",
        "read": r"peaks at distances \[(?P<first>\d+), (?P<second>\d+)",
        "holds": "first <= 8 and second - first <= 8",
    },
    {
        "quote": "a few entries are far larger than the rest",
        "cell": "learned-positions",
        "read": r"99th percentile (?P<p99>[\d.]+), largest (?P<largest>[\d.]+)",
        "holds": "largest > 10 * p99",
    },
]
