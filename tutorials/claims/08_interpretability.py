"""Claims the prose of notebook 08 makes about its own output (format: claims/00_quick_start.py)."""

TWIN_FOUND = (
    r"seed 4 \(attends\): attention (?P<att4>\d+)%, occlusion (?P<occ4>\d+)%, IG \(query kept\) "
    r"(?P<igk4>\d+)%, IG \(all padding\) (?P<igp4>\d+)%\n"
    r"seed 0 \(avoids\): attention (?P<att0>\d+)%, occlusion (?P<occ0>\d+)%, IG \(query kept\) "
    r"(?P<igk0>\d+)%, IG \(all padding\) (?P<igp0>\d+)%"
)
RELEVANCE = (
    r"raw attention, layer 2 \(mean of heads\): row @k puts (?P<raw_value>[\d.]+) on the value "
    r"\(column \d\), (?P<raw_self>[\d.]+) on itself.*\n"
    r"rollout after layer 2: row @k puts (?P<rollout_value>[\d.]+) on the value \(column \d\), "
    r"(?P<rollout_self>[\d.]+) on itself.*\n"
    r"flow after layer 2: row @k puts (?P<flow_value>[\d.]+) on the value \(column \d\), "
    r"(?P<flow_self>[\d.]+) on itself"
)
SPEARMAN = (
    r"0\s+(?P<raw0>[\d.]+) ± [\d.]+\s+(?P<rollout0>[\d.]+) ± [\d.]+\s+(?P<flow0>[\d.]+) ± "
    r"(?P<spread0>[\d.]+)\n(?:.*\n)?\s+1\s+(?P<raw1>[\d.]+) ± [\d.]+\s+(?P<rollout1>[\d.]+) ± "
    r"[\d.]+\s+(?P<flow1>[\d.]+) ± [\d.]+\n(?:.*\n)?\s+2\s+(?P<raw2>[\d.]+) ± (?P<spread2>[\d.]+)"
    r"\s+(?P<rollout2>[\d.]+) ± [\d.]+\s+(?P<flow2>[\d.]+) ± [\d.]+"
)

CLAIMS = [
    {
        "quote": "layer 0 is broad (high entropy, low confidence: its largest weights average "
        "about a third) except head 2, which puts nearly all of its attention on the previous "
        "token",
        "cell": "roles",
        "read": r"layer 0: confidence (?P<confidence>[\d.]+) on average without head 2; head "
        r"2's share on the previous token (?P<previous>[\d.]+)",
        "holds": "0.25 < confidence < 0.42 and previous > 0.85",
    },
    {
        "quote": "from layer 1 on, many heads — over a third of the 72 — are **sinks**",
        "cell": "roles",
        "read": r"sinks: (?P<sinks>\d+) of 72; per layer \[(?P<l0>\d+), \d+, \d+, \d+, \d+, "
        r"(?P<l5>\d+)\]",
        "holds": "sinks > 24 and l0 == 0",
    },
    {
        "quote": "Layer 5 has no sinks",
        "cell": "roles",
        "read": r"per layer \[\d+, \d+, \d+, \d+, \d+, (?P<l5>\d+)\]",
        "holds": "l5 == 0",
    },
    {
        "quote": "Sinks from different layers fall into one tight group; the broad layer-0 heads "
        "form another; L0H2 stands alone",
        "cell": "clusters",
        "read": r"^(?P<size>\d+) heads: (?:L[1-4]H\d+ )+\| layers \['1', '2', '3', '4'\]\n"
        r"(?:.*\n)*6 heads: (?:L0H\d+ )+\| layers \['0'\]\nL0H2 is in a group of (?P<alone>\d+)",
        "holds": "size >= 10 and alone == 1",
    },
    {
        "quote": "row `@k` reads mostly its own position",
        "cell": "rollout-maps",
        "read": RELEVANCE,
        "holds": "raw_self > 0.5 and raw_value < 0.15",
    },
    {
        "quote": "row `@k` lights up the value it points at (column *k*) as well, more than in "
        "the raw attention; flow spreads more evenly",
        "cell": "rollout-maps",
        "read": RELEVANCE,
        "holds": "rollout_value > 2 * raw_value and flow_value > 2 * raw_value "
        "and flow_self < rollout_self",
    },
    {
        "quote": "After one layer, rollout and flow are the same",
        "cell": "rollout-vs-occlusion",
        "read": SPEARMAN,
        "holds": "rollout0 == flow0",
    },
    {
        "quote": "raw attention agrees less and less with occlusion while rollout and flow hold up",
        "cell": "rollout-vs-occlusion",
        "read": SPEARMAN,
        "holds": "raw0 > raw1 > raw2 and rollout2 > raw2 + 0.1 and flow2 > raw2 + 0.1",
    },
    {
        "quote": "The spread (±) is large",
        "cell": "rollout-vs-occlusion",
        "read": SPEARMAN,
        "holds": "spread0 > 0.1 and spread2 > 0.1",
    },
    {
        "quote": "One head of layer 0 carries most of the index",
        "cell": "patching",
        "read": r"head L(?P<layer>\d)H(?P<head>\d) moves the most: (?P<moved>[\d.]+)",
        "holds": "layer == 0 and moved > 0.5",
    },
    {
        "quote": "layer 0's attention output nearly all of it",
        "cell": "patch-layers",
        "read": r"layer 0: attention output moves (?P<l0>[\d.]+).*\nlayer 1: attention output "
        r"moves (?P<l1>[\d.]+).*\nlayer 2: attention output moves (?P<l2>[\d.]+)",
        "holds": "l0 > 0.8 and 0.05 < l1 < l0 and 0.05 < l2 < l0",
    },
    {
        "quote": "without layer 2's heads the accuracy is unchanged",
        "cell": "ablation",
        "read": r"none\s+(?P<full>[\d.]+)\s+[\d.]+\n(?:.*\n)*all of layer 2\s+(?P<zero>[\d.]+)"
        r"\s+(?P<mean>[\d.]+)",
        "holds": "zero == full and mean == full",
    },
    {
        "quote": "Here the head that matters when removed, L0H2, is also the one that carries "
        "the most",
        "cell": "patching",
        "read": r"head L(?P<layer>\d)H(?P<head>\d) moves the most",
        "holds": "layer == 0 and head == 2",
    },
    {
        "quote": "so it needs more heads to keep the accuracy; the unnormalised gradient ranks "
        "heads as well as the ablation drop does",
        "cell": "pruning",
        "read": r"gradient \(paper\)\s+heads needed for 90% of the accuracy: (?P<paper>\d+)\n"
        r"gradient \(raw\)\s+heads needed .*: (?P<raw>\d+)\nablation\s+heads needed .*: "
        r"(?P<ablation>\d+)\nrandom \(mean of 10\)\s+heads needed .*: (?P<random>\d+)",
        "holds": "paper > raw and raw <= ablation and ablation < random",
    },
    {
        "quote": "most heads can go",
        "cell": "pruning",
        "read": r"ablation\s+heads needed for 90% of the accuracy: (?P<needed>\d+)",
        "holds": "needed <= 6",
    },
    {
        "quote": "With the 24 least important heads removed, the other sentences keep a cosine "
        "of about 0.94 with the full model's embeddings; 24 random heads bring it to about 0.8",
        "cell": "minilm-pruning",
        "read": r"by ablation importance: 24 heads removed, cosine (?P<ranked>[\d.]+)\n(?:.*\n)*"
        r"random: 24 heads removed, cosine (?P<random>[\d.]+)",
        "holds": "abs(ranked - 0.94) <= 0.02 and abs(random - 0.8) <= 0.03",
    },
    {
        "quote": "occlusion singles out the value the index points at, and the index itself; IG "
        "also credits other values, positively and negatively",
        "cell": "pointer-attributions",
        "read": r"occlusion's top two: positions \[(?P<a>\d), (?P<b>\d)\] \(the value at "
        r"(?P<value>\d), the index at (?P<index>\d)\); "
        r"IG scores below 0 on (?P<negative>\d) values",
        "holds": "a == value and b == index and negative >= 1",
    },
    {
        "quote": "its scores are several times smaller than the others'",
        "cell": "pointer-attributions",
        "read": r"largest \|gradient x input\| / largest \|occlusion\|: (?P<ratio>[\d.]+)",
        "holds": "ratio < 0.3",
    },
    {
        "quote": "Gradient-weighted rollout barely leaves the diagonal here",
        "cell": "pointer-attributions",
        "read": r"gradient-weighted rollout keeps (?P<diagonal>[\d.]+) on the diagonal",
        "holds": "diagonal > 0.8",
    },
    {
        "quote": "Occlusion and IG agree: *guitar*, then *playing*; IG marks *street* as pulling "
        "the sentences apart",
        "cell": "minilm-attributions",
        "read": r"occlusion \(\[MASK\]\): largest \|score\| on guitar \(\+(?P<occ>[\d.]+)\), then "
        r"playing.*\n(?:.*\n)Integrated Gradients: largest \|score\| on guitar \(\+[\d.]+\), "
        r"then playing.*\nIG on 'street': (?P<street>-?[\d.]+)",
        "holds": "street < 0",
    },
    {
        "quote": "its scores are over ten times smaller, and its largest one, on *guitar* too, has "
        "the opposite sign",
        "cell": "minilm-attributions",
        "read": r"occlusion \(\[MASK\]\): largest \|score\| on guitar \(\+(?P<occ>[\d.]+)\).*\n"
        r"gradient × input: largest \|score\| on guitar \((?P<gxi>-[\d.]+)\)",
        "holds": "occ > 10 * abs(gxi)",
    },
    {
        "quote": "Attention's top key is the twin every time in one model and never in the other",
        "cell": "twin-found",
        "read": TWIN_FOUND,
        "holds": "att4 == 100 and att0 == 0",
    },
    {
        "quote": "Occlusion and Integrated Gradients find the twin in both models most of the "
        "time (chance: 1 in 7)",
        "cell": "twin-found",
        "read": TWIN_FOUND,
        "holds": "min(occ4, occ0, igk4, igk0) > 50",
    },
    {
        "quote": "from an all-padding baseline, the avoiding model's IG is close to chance",
        "cell": "twin-found",
        "read": TWIN_FOUND,
        "holds": "igp0 < 25 and igp4 > 50",
    },
    {
        "quote": "Both models collapse to near chance (1 in 8)",
        "cell": "permutation",
        "read": r"seed 4 \(attends\): .*, to (?P<attends>[\d.]+)\nseed 0 \(avoids\): .*, to "
        r"(?P<avoids>[\d.]+)",
        "holds": "attends < 0.25 and avoids < 0.25",
    },
    {
        "quote": "**Histogram** (every token predicts how often it occurs) is solved just as well "
        "with uniform attention",
        "cell": "uniform",
        "read": r"histogram\s+learned attention (?P<learned>[\d.]+) \| the same model, attention "
        r"made uniform (?P<after>[\d.]+) \| retrained with uniform attention (?P<uniform>[\d.]+)",
        "holds": "uniform >= learned - 0.05 and after < 0.5",
    },
    {
        "quote": "**Reverse** needs it",
        "cell": "uniform",
        "read": r"reverse\s+learned attention (?P<learned>[\d.]+) \| .* \| retrained with "
        r"uniform attention (?P<uniform>[\d.]+)",
        "holds": "uniform < 0.5 and learned > 0.95",
    },
    {
        "quote": "The last layer's attention agrees least with the others; IG and occlusion agree "
        "most, and still not fully",
        "cell": "rankings",
        "read": r"agrees least with the others: attention\nleast alike: .*; most alike: IG and "
        r"occlusion \((?P<best>[\d.]+)\)",
        "holds": "best < 0.9",
    },
    {
        "quote": "it finds the sinks again (with its own, lower threshold, so more of them than "
        "`head_roles` did)",
        "cell": "diagnose",
        "read": r"sink flags: (?P<flags>\d+); head_roles' sinks: (?P<roles>\d+)",
        "holds": "flags > roles",
    },
]
