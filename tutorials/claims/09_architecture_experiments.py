"""Claims the prose of notebook 09 makes about its own output (format: claims/00_quick_start.py).

These are the sentences issue 13 found contradicting their own output ("58 instead of 27",
"two of the three stall", "stuck from step 30 to 60", "stays near chance"): now each is read
from what the notebook prints.
"""

STEPS = (
    r"d_head 32: (?P<unscaled32>\d+) steps to 99% unscaled, (?P<scaled32>\d+) scaled.*\n"
    r"d_head 128: (?P<unscaled128>\d+) steps to 99% unscaled, (?P<scaled128>\d+) scaled"
)
STRETCH = (
    r"scaled, d_head 128\s+seed 0: (?P<s0>\d+) steps\n\s+scaled, d_head 128\s+seed 1: (?P<s1>\d+) "
    r"steps\n\s+scaled, d_head 128\s+seed 2: (?P<s2>\d+) steps\n\s+unscaled, d_head 128\s+seed 0: "
    r"(?P<u0>\d+) steps\n\s+unscaled, d_head 128\s+seed 1: (?P<u1>\d+) steps\n\s+unscaled, "
    r"d_head 128\s+seed 2: (?P<u2>\d+) steps"
)
STUCK = (
    r"scaled   stuck queries:(?:\s+\d+){10}\nunscaled stuck queries:\s+(?P<u0>\d+)"
    r"\s+(?P<u10>\d+)\s+(?P<u20>\d+)\s+(?P<u30>\d+)\s+(?P<u40>\d+)\s+(?P<u50>\d+)\s+(?P<u60>\d+)"
    r"\s+(?P<u70>\d+)\s+(?P<u80>\d+)\s+(?P<u90>\d+)"
)

CLAIMS = [
    {
        "quote": "without the scaling, learning is slower: about a quarter more steps to 99 % at "
        "d_head = 32, about two thirds more at d_head = 128",
        "cell": "scaling",
        "read": STEPS,
        "holds": "1.1 < unscaled32 / scaled32 < 1.4 and 1.5 < unscaled128 / scaled128 < 1.85",
    },
    {
        "quote": "The wider the head, the larger the raw scores",
        "cell": "scaling",
        "read": STEPS,
        "holds": "unscaled128 / scaled128 > unscaled32 / scaled32",
    },
    {
        "quote": "the last stretch, from 0.85 to 0.99 accuracy, takes longer without the scaling",
        "cell": "scaling",
        "read": STRETCH,
        "holds": "u0 + u1 + u2 > s0 + s1 + s2 and min(u0, u1, u2) >= max(s0, s1, s2)",
    },
    {
        "quote": "seed 0 **stalls** just below 0.9 for three evaluations",
        "cell": "scaling",
        "read": r"seed 0, accuracy at steps 35, 40, 45: (?P<a>[\d.]+) (?P<b>[\d.]+) (?P<c>[\d.]+)",
        "holds": "0.85 <= min(a, b, c) and max(a, b, c) < 0.92",
    },
    {
        "quote": "the scaled runs rise in one go",
        "cell": "scaling",
        "read": STRETCH,
        "holds": "max(s0, s1, s2) <= 10",
    },
    {
        "quote": "At step 0 the unscaled wide head is already **one-hot**: nearly every query puts "
        "all its weight on a single key",
        "cell": "stuck",
        "read": STUCK,
        "holds": "u0 >= 6",
    },
    {
        "quote": "Most rows flip to the mirror key by step 30, but from then on one query at a "
        "time stays fully on a wrong key",
        "cell": "stuck",
        "read": STUCK,
        "holds": "u30 == 1 and u40 == 1 and u50 == 1 and u20 > 1",
    },
    {
        "quote": "then another, which reads its own position instead of its mirror for two "
        "snapshots",
        "cell": "stuck",
        "read": r"step 30: query (?P<q30>\d) stuck on key (?P<k30>\d).*\n"
        r"step 40: query (?P<q40>\d) "
        r"stuck on key (?P<k40>\d).*\nstep 50: query (?P<q50>\d) stuck on key (?P<k50>\d)",
        "holds": "q30 != q40 and q40 == q50 and k40 == q40 and k50 == q50",
    },
    {
        "quote": "the last one finds its key only by step 60",
        "cell": "stuck",
        "read": STUCK,
        "holds": "u50 > 0 and u60 == 0 and u70 == 0 and u80 == 0 and u90 == 0",
    },
    {
        "quote": "no row is saturated (no stuck query at any step)",
        "cell": "stuck",
        "read": r"scaled   stuck queries:\s+(?P<first>0)(?:\s+0){9}\n",
        "holds": "first == 0",
    },
    {
        "quote": "more heads means narrower heads (d_head = 32 / H) and the best head's pattern "
        "gets a little less crisp",
        "cell": "variants",
        "read": r"1 head \(shipped\)\s+1\s+(?P<a1>[\d.]+)\s+\d+\s+(?P<p1>[\d.]+).*\n2 heads\s+1\s+"
        r"(?P<a2>[\d.]+)\s+\d+\s+(?P<p2>[\d.]+).*\n4 heads\s+1\s+(?P<a4>[\d.]+)\s+\d+\s+"
        r"(?P<p4>[\d.]+).*\n8 heads\s+1\s+(?P<a8>[\d.]+)\s+\d+\s+(?P<p8>[\d.]+)",
        "holds": "min(a1, a2, a4, a8) == 1 and p1 >= p2 >= p4 >= p8 and p8 > 0.85",
    },
    {
        "quote": "so it never learns the task. Its accuracy is still above chance (1 in 11)",
        "cell": "variants",
        "read": r"no positions\s+1\s+(?P<accuracy>[\d.]+)\s+never",
        "holds": "1 / 11 < accuracy < 0.5",
    },
    {
        "quote": "Sinusoidal positions reach full accuracy with a much lower pattern score",
        "cell": "variants",
        "read": r"1 head \(shipped\)\s+1\s+[\d.]+\s+\d+\s+(?P<learned>[\d.]+).*\n(?:.*\n)*"
        r"sinusoidal positions\s+1\s+(?P<accuracy>[\d.]+)\s+\d+\s+(?P<score>[\d.]+)",
        "holds": "accuracy == 1 and score < learned - 0.2",
    },
    {
        "quote": "**pre-norm** — here about as good",
        "cell": "variants",
        "read": r"1 head \(shipped\)\s+1\s+[\d.]+\s+(?P<post>\d+).*\n(?:.*\n)*pre-norm\s+1\s+"
        r"(?P<accuracy>[\d.]+)\s+(?P<pre>\d+)",
        "holds": "accuracy == 1 and abs(pre - post) <= 15",
    },
    {
        "quote": "Without the scaling, the wider the head, the smaller `J` at initialisation",
        "cell": "jacobian-size",
        "read": r"d_head   8: mean \|J\| (?P<s8>[\d.]+) scaled, (?P<u8>[\d.]+) unscaled\n"
        r"d_head  64: mean \|J\| (?P<s64>[\d.]+) scaled, (?P<u64>[\d.]+) unscaled\n"
        r"d_head 256: mean \|J\| (?P<s256>[\d.]+) scaled, (?P<u256>[\d.]+) unscaled",
        "holds": "u8 > u64 > u256 and u256 < 0.3 * s256 "
        "and max(s8, s64, s256) < 1.5 * min(s8, s64, s256)",
    },
    {
        "quote": "The 4-head model spreads the work: most of its heads read the mirror key",
        "cell": "four-heads",
        "read": r"pattern score of each head: (?P<a>[\d.]+) (?P<b>[\d.]+) (?P<c>[\d.]+) "
        r"(?P<d>[\d.]+)",
        "holds": "sum(v > 0.6 for v in (a, b, c, d)) >= 3",
    },
]
