"""Training-step speed: NumPy (hand-written backward + AdamW) against PyTorch on the same work.

One step = forward pass, cross-entropy loss, backward pass, gradient clipping and an AdamW
update, on the same model (same weights, copied into a stack of
``torch.nn.TransformerEncoderLayer`` plus embeddings and a linear head) and the same batch.
Both sides use the same number of BLAS / intra-op threads. Prints the median time per step
and the ratio NumPy / PyTorch, for a toy size (the reverse task's model) and a medium size
(d_model 128), at 1 and 2 threads.

    python benchmarks/train_step.py [--repeats R] [--threads 1 2]

Target (issue 16): ratio <= 1.2. The last column is the machine's 1-minute load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from forward import torch_layer  # a sibling script: the same weight copy as the forward benchmark
from threadpoolctl import threadpool_limits

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.optim import AdamW
from minitransformer.tasks import Batch
from minitransformer.training import parameters, train_step

SIZES = {
    # name: (config, batch size, sequence length)
    "toy (reverse task)": (
        EncoderConfig(vocab_size=12, d_model=32, n_heads=1, n_layers=1, d_ff=64, max_len=8,
                      positional="learned"),
        64, 8,
    ),
    "medium (d_model 128)": (
        EncoderConfig(vocab_size=1000, d_model=128, n_heads=4, n_layers=2, d_ff=512, max_len=64,
                      positional="learned"),
        16, 64,
    ),
}  # fmt: skip
LR, WEIGHT_DECAY, CLIP = 1e-3, 0.01, 1.0


def torch_step(model: Encoder, classifier: Classifier, batch: Batch) -> Callable[[], float]:
    """The same model, loss and optimiser in PyTorch; returns a function doing one step."""
    cfg, p = model.config, model.params

    def t(array: np.ndarray) -> torch.nn.Parameter:
        return torch.nn.Parameter(torch.from_numpy(np.array(array)))

    layers = torch.nn.ModuleList([torch_layer(model, l) for l in range(cfg.n_layers)])
    layers.train()
    W_E, W_pos = t(p["embed.W_E"]), t(p["embed.W_pos"])
    W_head, b_head = t(classifier.params["W"]), t(classifier.params["b"])
    params = [W_E, W_pos, W_head, b_head, *layers.parameters()]
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
    ids = torch.from_numpy(batch.token_ids)
    padding = torch.from_numpy(~batch.mask)  # PyTorch: True = ignore this key
    targets = torch.from_numpy(batch.targets).reshape(-1)

    def step() -> float:
        optimizer.zero_grad()
        x = W_E[ids] + W_pos[: ids.shape[1]]
        for layer in layers:
            x = layer(x, src_key_padding_mask=padding)
        logits = x @ W_head + b_head
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        optimizer.step()
        return loss.item()

    return step


def numpy_step(model: Encoder, classifier: Classifier, batch: Batch) -> Callable[[], float]:
    optimizer = AdamW(parameters(model, classifier), lr=LR, weight_decay=WEIGHT_DECAY)

    def step() -> float:
        return train_step(model, classifier, batch, optimizer, clip_norm=CLIP)[0]

    return step


def median_times(
    steps: dict[str, Callable[[], float]], repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per step of each side, timed in alternation so that a change in the
    machine's load hits both alike; and the loss of each side's first step."""
    first_loss = {name: step() for name, step in steps.items()}
    for step in steps.values():
        step()  # warm up (allocations, BLAS threads)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, first_loss


def make_batch(config: EncoderConfig, batch_size: int, seq_len: int) -> Batch:
    rng = np.random.default_rng(0)
    ids = rng.integers(1, config.vocab_size, size=(batch_size, seq_len))
    lengths = rng.integers(seq_len // 2, seq_len + 1, size=batch_size)
    lengths[0] = seq_len
    mask = np.arange(seq_len)[None, :] < lengths[:, None]
    targets = np.where(mask, rng.integers(0, config.vocab_size, size=ids.shape), -100)
    return Batch(np.where(mask, ids, 0), mask, targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    header = f"{'size':22s} {'threads':>7s} {'numpy ms':>9s} {'torch ms':>9s} {'ratio':>6s}"
    print(f"{header} {'load':>5s}")
    for name, (config, batch_size, seq_len) in SIZES.items():
        batch = make_batch(config, batch_size, seq_len)
        for threads in args.threads:
            torch.set_num_threads(threads)
            with threadpool_limits(threads):
                # fresh, identical models for each side: training changes them in place
                model = Encoder(config, seed=0)
                classifier = Classifier(config.d_model, config.vocab_size, seed=1)
                steps = {
                    "torch": torch_step(model, classifier, batch),  # copies the weights first
                    "numpy": numpy_step(model, classifier, batch),
                }
                seconds, loss = median_times(steps, args.repeats)
            if abs(loss["numpy"] - loss["torch"]) > 1e-4 * abs(loss["torch"]):
                raise RuntimeError(f"the two sides disagree on the first loss: {loss}")
            t_numpy, t_torch = seconds["numpy"], seconds["torch"]
            print(f"{name:22s} {threads:7d} {t_numpy * 1e3:9.2f} {t_torch * 1e3:9.2f} "
                  f"{t_numpy / t_torch:6.2f} {os.getloadavg()[0]:5.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
