"""Claims the prose of notebook 12 makes about its own output (format: claims/00_quick_start.py)."""

CLAIMS = [
    {
        "quote": "The two agree to about ten digits",
        "cell": "fd-demo",
        "read": r"dL/dx, largest difference from finite differences: (?P<x>[\d.e+-]+)\n"
        r"dL/dW, largest difference from finite differences: (?P<w>[\d.e+-]+)",
        "holds": "x < 1e-8 and w < 1e-8",
    },
    {
        "quote": "is of the same order as $\\partial L / \\partial W$",
        "cell": "flow",
        "read": r"untrained: loss [\d.]+, largest \|dL/dW\| (?P<w>[\d.e+-]+), "
        r"largest \|dL/dS\| (?P<s>[\d.e+-]+)",
        "holds": "s > w / 10",
    },
    {
        "quote": "is smaller still by orders of magnitude",
        "cell": "flow",
        "read": r"trained  : loss (?P<loss>[\d.]+), largest \|dL/dW\| (?P<w>[\d.e+-]+), "
        r"largest \|dL/dS\| (?P<s>[\d.e+-]+)",
        "holds": "s < w / 100 and loss < 0.01",
    },
    {
        "quote": "Both agree with finite differences to many digits, and in the causal model the "
        "gradient of an output with respect to every later token is exactly 0",
        "cell": "whole",
        "read": r"causal=False: dL/dW_Q relative error (?P<e0>[\d.e+-]+)\n"
        r"causal=True: dL/dW_Q relative error (?P<e1>[\d.e+-]+)\n"
        r"causal: largest \|dL/d embedding\| at positions 0-2: (?P<past>[\d.]+) ; "
        r"at positions 3-7: (?P<future>[\d.]+)",
        "holds": "e0 < 1e-6 and e1 < 1e-6 and future == 0 and past > 0",
    },
    {
        "quote": "The untrained model starts worse than uniform guessing over the 11 tokens",
        "cell": "loss-falls",
        "read": r"loss (?P<first>[\d.]+) at step 1 "
        r"\(uniform guessing: log 11 = (?P<uniform>[\d.]+)\)",
        "holds": "first > uniform",
    },
    {
        "quote": "the loss falls by more than an order of magnitude within 60 steps",
        "cell": "loss-falls",
        "read": r"loss (?P<first>[\d.]+) at step 1 .*?, (?P<last>[\d.]+) at step 60",
        "holds": "last < first / 10",
    },
]
