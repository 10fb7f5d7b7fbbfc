"""Claims the prose of notebook 02 makes about its own output (format: claims/00_quick_start.py)."""

CLAIMS = [
    {
        "quote": "position *i* predicts the token at position `7 - i` (on the example below, "
        "it does)",
        "cell": "reverse",
        "read": r"= the input reversed: (?P<reversed>True|False)",
        "holds": "reversed",
    },
    {
        "quote": "the largest score of each row wins almost everything",
        "cell": "steps",
        "read": r"largest weight: (?P<mean>[\d.]+) on average, (?P<least>[\d.]+) at least",
        "holds": "mean > 0.9 and least > 0.5",
    },
    {
        "quote": "key at position `7 - 2 = 5` has by far the largest dot product",
        "cell": "breakdown",
        "read": r"largest dot product at key (?P<key>\d+) \((?P<first>-?[\d.]+); next largest "
        r"(?P<second>-?[\d.]+)\)",
        "holds": "key == 5 and first - second > 5",
    },
    {
        "quote": "Unscaled, the largest weight creeps towards 1 as `d` grows",
        "cell": "sqrt-d",
        "read": r"\n\s+4\s+[\d.]+\s+[\d.]+\s+(?P<raw4>[\d.]+)\s+(?P<scaled4>[\d.]+)\n(?:.*\n)*"
        r"\s+1024\s+[\d.]+\s+[\d.]+\s+(?P<raw1024>[\d.]+)\s+(?P<scaled1024>[\d.]+)",
        "holds": "raw1024 > 0.9 and raw1024 > raw4 + 0.2",
    },
    {
        "quote": "scaled, it stays the same for every width",
        "cell": "sqrt-d",
        "read": r"\n\s+4\s+[\d.]+\s+[\d.]+\s+(?P<raw4>[\d.]+)\s+(?P<scaled4>[\d.]+)\n(?:.*\n)*"
        r"\s+1024\s+[\d.]+\s+[\d.]+\s+(?P<raw1024>[\d.]+)\s+(?P<scaled1024>[\d.]+)",
        "holds": "abs(scaled1024 - scaled4) < 0.05",
    },
]
