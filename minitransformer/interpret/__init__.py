"""Interpretability with NumPy: what heads do, which heads matter, and what attention hides.

One module per question:

* :mod:`~minitransformer.interpret.stats` -- what does each head look at? (entropy, distance,
  confidence, shares on self / neighbours / special tokens / padding) and a role per head;
* :mod:`~minitransformer.interpret.similarity` -- which heads attend alike? (Jensen-Shannon
  distances, MDS map, clusters);
* :mod:`~minitransformer.interpret.rollout` -- which *input* tokens reach an output?
  (attention rollout and attention flow);
* :mod:`~minitransformer.interpret.interventions` -- what changes if a head is removed or an
  activation replaced? (zero/mean ablation, activation patching);
* :mod:`~minitransformer.interpret.importance` -- which heads matter, and how many are needed?
  (Michel et al.'s gradient importance, ablation importance, pruning curves);
* :mod:`~minitransformer.interpret.attribution` -- which tokens drive a prediction? (occlusion,
  gradient x input, Integrated Gradients, gradient-weighted rollout).

Conventions: attention weights are ``A[l, b, h, i, j]`` (row i = query reads column j = key);
a padding mask is (B, S) with 1 for real tokens.
"""
