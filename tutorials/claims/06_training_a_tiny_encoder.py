"""Claims the prose of notebook 06 makes about its own output (format: claims/00_quick_start.py)."""

TWINS = (
    r"avoid: held-out accuracy (?P<avoid_accuracy>[\d.]+), pattern score (?P<avoid_score>[\d.]+)"
    r"\nattend: held-out accuracy (?P<attend_accuracy>[\d.]+), pattern score "
    r"(?P<attend_score>[\d.]+)"
)

CLAIMS = [
    {
        "quote": "the moment the head finds the mirror position",
        "cell": "head-forms",
        "read": r"pattern score above 0.9 from step (?P<formed>\d+); training accuracy above "
        r"0.99 from step (?P<learned>\d+)",
        "holds": "abs(formed - learned) <= 30",
    },
    {
        "quote": "its rows are uneven — some put most of their weight on one key",
        "cell": "head-forms",
        "read": r"step 0: largest weight per row (?P<mean>[\d.]+) on average, "
        r"up to (?P<top>[\d.]+)",
        "holds": "top > 0.5 and mean > 2 * 0.125",
    },
    {
        "quote": "its pattern score is that of uniform attention",
        "cell": "head-forms",
        "read": r"pattern score at step   0: (?P<score>[\d.]+)",
        "holds": "abs(score - 0.125) < 0.05",
    },
    {
        "quote": "Within a few dozen steps the anti-diagonal appears, and then it only sharpens",
        "cell": "head-forms",
        "read": r"step  30: (?P<s30>[\d.]+)\n.*step  50: (?P<s50>[\d.]+)\n.*step 100: "
        r"(?P<s100>[\d.]+)\n.*step 600: (?P<s600>[\d.]+)",
        "holds": "s30 > 0.3 and s30 <= s50 <= s100 <= s600 and s600 > 0.95",
    },
    {
        "quote": "Both models are right on every held-out position (accuracy 1 for both)",
        "cell": "twins",
        "read": TWINS,
        "holds": "avoid_accuracy == 1 and attend_accuracy == 1",
    },
    {
        "quote": "One puts nearly all of each query's attention on the twin (score near 1); the "
        "other puts almost none there (score near 0)",
        "cell": "twins",
        "read": TWINS,
        "holds": "attend_score > 0.85 and avoid_score < 0.1",
    },
]
