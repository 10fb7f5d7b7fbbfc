"""Claims the prose of notebook 13 makes about its own output (format: claims/00_quick_start.py)."""

LIVE = (
    r"200 steps \(live\) : loss (?P<first>[\d.]+) on the first saying, (?P<second>[\d.]+) on the "
    r"second; best previous-token score (?P<prev>[\d.]+) \(layer 0, head \d\), best induction "
    r"score (?P<ind>[\d.]+)"
)
SHIPPED = (
    r"shipped          : loss (?P<first>[\d.]+) on the first saying, (?P<second>[\d.]+) on the "
    r"second; best previous-token score (?P<prev>[\d.]+) \(layer 0, head \d\), best induction "
    r"score (?P<ind>[\d.]+) \(layer 1"
)
TEMPERATURES = (
    r"T = 0.5: (?P<w05>\d+)% words of the play, (?P<r05>\d+)% repeated\n.*\n"
    r"T = 1.0: (?P<w10>\d+)% words of the play, (?P<r10>\d+)% repeated\n.*\n"
    r"T = 1.5: (?P<w15>\d+)% words of the play, (?P<r15>\d+)% repeated"
)
ENCODER = (
    r"MiniLM \(encoder, word pieces\) : earlier copy (?P<m_earlier>[\d.]+), later copy "
    r"(?P<m_later>[\d.]+), induction (?P<m_ind>[\d.]+)\n"
    r"shipped decoder \(characters\)  : earlier copy (?P<d_earlier>[\d.]+), later copy "
    r"(?P<d_later>[\d.]+), induction (?P<d_ind>[\d.]+)"
)

CLAIMS = [
    {
        "quote": "Every later key gets a weight of exactly 0, and changing the last character "
        "leaves every earlier output exactly as it was",
        "cell": "causal-trace",
        "read": r"total weight on later keys, every layer and head: (?P<future>[\d.]+)\n"
        r"largest change of the outputs at positions 0 to 18: (?P<before>[\d.]+) ; "
        r"at position 19: (?P<last>[\d.]+)",
        "holds": "future == 0 and before == 0 and last > 0",
    },
    {
        "quote": "In a few seconds the perplexity falls from 61 to a fraction of it",
        "cell": "train-live",
        "read": r"step 200: held-out loss [\d.]+ \(perplexity (?P<perplexity>[\d.]+)\)",
        "holds": "perplexity < 61 / 3",
    },
    {
        "quote": "most of its words are not the play's",
        "cell": "train-live",
        "read": r"\((?P<words>\d+)% words of the play, (?P<repeated>\d+)% repeated\)",
        "holds": "words < 50",
    },
    {
        "quote": "Its held-out loss is lower, and it does something the short-trained model does "
        "not: it repeats itself",
        "cell": "shipped",
        "read": r"held-out loss: shipped (?P<shipped>[\d.]+), after 200 steps (?P<live>[\d.]+)\n"
        r"repeated 10-character pieces: shipped (?P<shipped_rep>\d+)%, after 200 steps "
        r"(?P<live_rep>\d+)%",
        "holds": "shipped < live and shipped_rep > live_rep + 5",
    },
    {
        "quote": "The lower the temperature, the more of the written words are the play's own "
        "— and the more the text repeats itself",
        "cell": "temperatures",
        "read": TEMPERATURES,
        "holds": "w05 > w10 > w15 and r05 > r10 >= r15",
    },
    {
        "quote": "its loss there is a fraction of the first saying's, and it has a strong "
        "previous-token head in layer 0 and an induction head in layer 1",
        "cell": "repeat-loss",
        "read": SHIPPED,
        "holds": "second < first / 3 and prev > 0.9 and ind > 0.6",
    },
    {
        "quote": "The model trained for seconds has neither yet",
        "cell": "repeat-loss",
        "read": LIVE,
        "holds": "prev < 0.5 and ind < 0.1 and second > first / 2",
    },
    {
        "quote": "MiniLM has a head that reads a repeated word's other occurrence — in both "
        "directions, since nothing stops it from reading ahead — but no induction head",
        "cell": "encoder-vs-decoder",
        "read": ENCODER,
        "holds": "m_earlier > 0.4 and m_later > 0.4 and m_ind < 0.2",
    },
    {
        "quote": "The decoder cannot look ahead at all (its later-copy score is exactly 0), and "
        "reads not the copy itself but what followed it",
        "cell": "encoder-vs-decoder",
        "read": ENCODER,
        "holds": "d_later == 0 and d_ind > 0.6 and d_earlier < 0.1",
    },
]
