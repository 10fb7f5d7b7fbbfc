"""Claims the prose of notebook 03 makes about its own output (format: claims/00_quick_start.py)."""

CLAIMS = [
    {
        "quote": "the largest difference is float32 rounding",
        "cell": "padding-harmless",
        "read": r"largest difference: (?P<difference>[\d.e+-]+)",
        "holds": "difference < 1e-4",
    },
    {
        "quote": "Without the mask the `[PAD]` tokens leak into every real token",
        "cell": "padding-leaks",
        "read": r"largest difference: (?P<difference>[\d.e+-]+)",
        "holds": "difference > 0.1",
    },
    {
        "quote": "change the *last* token and no earlier output moves",
        "cell": "causal-test",
        "read": r"\[0\.\s+0\.\s+0\.\s+0\.\s+0\.\s+(?P<last>[\d.]+)\]",
        "holds": "last > 0",
    },
]
