"""Claims the prose of notebook 04 makes about its own output (format: claims/00_quick_start.py)."""

CLAIMS = [
    {
        "quote": "head 8 reads the *next* token",
        "cell": "layer1-heads",
        "read": r"head (?P<head>\d+) reads the next token most \((?P<next>[\d.]+)\)",
        "holds": "head == 8 and next > 0.4",
    },
    {
        "quote": "most heads of this layer put over half their weight on `[CLS]`",
        "cell": "layer1-heads",
        "read": r"; (?P<count>\d+) of 12 heads put over half on \[CLS\]",
        "holds": "count > 6",
    },
    {
        "quote": "Head 1 (notebook 00) sends the largest share of it to *cat*",
        "cell": "it-heads",
        "read": r"head 1: 'it' puts (?P<cat>[\d.]+) on 'cat', its largest weight: True",
        "holds": "cat > 0.3",
    },
    {
        "quote": "head 5 parks most of it on `[CLS]`",
        "cell": "it-heads",
        "read": r"head 5: (?P<cls>[\d.]+) on \[CLS\]",
        "holds": "cls > 0.5",
    },
]
