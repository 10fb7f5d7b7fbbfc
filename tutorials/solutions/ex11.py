"""Answers for notebook 11: logging to TensorBoard and writing callbacks."""

from minitransformer.training import Callback


class GradientSpikes(Callback):
    """Exercise 11.1: remember the steps whose gradient norm is above ``threshold``."""

    def __init__(self, threshold):
        self.threshold = threshold
        self.steps = []

    def on_step(self, step, model, classifier, history):
        if step > 0 and history.grad_norm[-1] > self.threshold:  # step 0: no gradient yet
            self.steps.append(step)
