"""Claims the prose of notebook 10 makes about its own output (format: claims/00_quick_start.py)."""

MASK = (
    r"with the mask: histogram accuracy (?P<with_accuracy>[\d.]+), real queries' weight on "
    r"padding (?P<with_padding>[\d.]+)\nwithout the mask: histogram accuracy "
    r"(?P<without_accuracy>[\d.]+), real queries' weight on padding (?P<without_padding>[\d.]+)"
)
OVERFITTING = (
    r"small: accuracy on its training set (?P<small_train>[\d.]+), held-out (?P<small_val>[\d.]+); "
    r"pattern score on training inputs (?P<small_pattern_train>[\d.]+), held-out "
    r"(?P<small_pattern_val>[\d.]+)\nlarge: accuracy on its training set [\d.]+, held-out "
    r"(?P<large_val>[\d.]+); pattern score on training inputs (?P<large_pattern_train>[\d.]+), "
    r"held-out (?P<large_pattern_val>[\d.]+)\nthe small run's held-out loss was lowest at step "
    r"(?P<best>\d+) and then rose by (?P<rise>[\d.]+); its last training loss (?P<last>[\d.]+) "
    r"\(first (?P<first>[\d.]+)\)"
)

CLAIMS = [
    {
        "quote": "the real tokens' rows give a good part of their weight to `pad` — about a fifth",
        "cell": "forgotten-mask",
        "read": MASK,
        "holds": "with_padding == 0 and 0.15 < without_padding < 0.25",
    },
    {
        "quote": "and the accuracy drops",
        "cell": "forgotten-mask",
        "read": MASK,
        "holds": "without_accuracy < with_accuracy - 0.05",
    },
    {
        "quote": "so forgetting the mask changes almost nothing (the accuracy is the same)",
        "cell": "shift",
        "read": r"shift accuracy with the mask: (?P<a>[\d.]+)\nshift accuracy without the mask: "
        r"(?P<b>[\d.]+)",
        "holds": "abs(a - b) < 0.005",
    },
    {
        "quote": "reads, for most queries, the key two places back",
        "cell": "shift",
        "read": r"real queries whose top key is two places back: (?P<share>[\d.]+)",
        "holds": "share > 0.6",
    },
    {
        "quote": "every query reads the key two places after its mirror, counting round the end "
        "of the sequence",
        "cell": "off-by-one",
        "read": r"two places after the mirror, round the end: (?P<shifted>True|False)",
        "holds": "shifted",
    },
    {
        "quote": "The attention is confident and wrong, and the accuracy falls to chance (1 in 11)",
        "cell": "off-by-one",
        "read": r"off by one\s+accuracy (?P<accuracy>[\d.]+)\s+pattern score (?P<score>[\d.]+)"
        r"(?:.*\n)*chance: (?P<chance>[\d.]+)",
        "holds": "abs(accuracy - chance) < 0.03 and score < 0.05",
    },
    {
        "quote": "On 16 examples the training loss goes to nearly zero while the held-out loss, "
        "after an early minimum (dotted line), climbs",
        "cell": "overfitting",
        "read": OVERFITTING,
        "holds": "last < 0.05 * first and rise > 0.5 and best < 100",
    },
    {
        "quote": "the large-set model's head is the mirror map on any input, training or new",
        "cell": "overfitting",
        "read": OVERFITTING,
        "holds": "large_pattern_train > 0.95 and large_pattern_val > 0.95",
    },
    {
        "quote": "the small-set model's head matches it only in part, and less on new inputs than "
        "on the ones it memorised",
        "cell": "overfitting",
        "read": OVERFITTING,
        "holds": "small_pattern_val < small_pattern_train < 0.8",
    },
    {
        "quote": "it stops after `p` evaluations without a new lowest held-out loss and restores "
        "the best parameters",
        "cell": "early-stopping",
        "read": r"stopped early: (?P<stopped>True|False) after (?P<last>\d+) steps; restored step "
        r"(?P<best>\d+)",
        "holds": "stopped and best < last",
    },
]
