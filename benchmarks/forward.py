"""Forward-pass speed: the NumPy encoder against PyTorch eager on the same weights and CPU.

A MiniLM-sized encoder (6 layers, d_model 384, 12 heads, d_ff 1536, post-norm, GELU) gets
the same random weights in NumPy and in a stack of ``torch.nn.TransformerEncoderLayer``.
Both sides use the same number of BLAS threads. PyTorch and the NumPy forward (untraced and
traced, with the compiled loops of ``minitransformer/kernels.py`` when numba is installed, and
traced in pure NumPy) take turns, and each prints its best of R runs; then the ratios to
PyTorch and the trace overhead, with the 1-minute load average of the machine.

    python benchmarks/forward.py [--threads 1 2] [--repeats R]

PyTorch here is eager ``nn.TransformerEncoderLayer`` in ``inference_mode``: its "fast path"
runs each layer as one native function (``_transformer_encoder_layer_fwd``: biases inside the
matrix products, GELU fused onto the first feed-forward product, no intermediates kept).

Targets (issue 16): traced forward no slower than PyTorch (ratio <= 1.0) at every shape, with
1 and 2 threads, and the trace overhead <= 10% over the untraced forward.

Where the trace overhead came from: a traced pass keeps every intermediate (about 320 MB at
(8, 128)), and glibc's malloc handed freed memory back to the kernel, so each call got fresh
memory 4 KB page by page (tens of thousands of page faults, seen as system time). An Encoder
now asks malloc to keep freed memory for reuse (``minitransformer/memory.py``); setting
``GLIBC_TUNABLES`` or a ``MALLOC_*_`` variable leaves malloc to those settings instead.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from minitransformer import Encoder, EncoderConfig, kernels

SHAPES = [(1, 32), (8, 128), (1, 512)]


def minilm_sized_config() -> EncoderConfig:
    return EncoderConfig(
        vocab_size=30522, d_model=384, n_heads=12, n_layers=6, d_ff=1536, max_len=512,
        positional="learned", norm="post", activation="gelu", embed_layer_norm=True,
        layer_norm_eps=1e-12,
    )  # fmt: skip


def torch_layer(model: Encoder, l: int) -> torch.nn.TransformerEncoderLayer:
    """Block ``l`` of ``model`` (post-norm, relu or gelu) as a ``torch.nn.TransformerEncoderLayer``
    holding the same weights: ours are (d_in, d_out), ``nn.Linear`` stores (d_out, d_in)."""
    cfg, p, b = model.config, model.params, f"blocks.{l}"

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(p[name]))

    layer = torch.nn.TransformerEncoderLayer(
        cfg.d_model, cfg.n_heads, cfg.d_ff, dropout=0.0, activation=cfg.activation,
        layer_norm_eps=cfg.layer_norm_eps, batch_first=True, norm_first=False,
    )  # fmt: skip
    with torch.no_grad():
        attn = layer.self_attn
        attn.in_proj_weight.copy_(
            torch.cat([t(f"{b}.attn.W_{n}").T for n in ("Q", "K", "V")], dim=0)
        )
        attn.in_proj_bias.copy_(torch.cat([t(f"{b}.attn.b_{n}") for n in ("Q", "K", "V")]))
        attn.out_proj.weight.copy_(t(f"{b}.attn.W_O").T)
        attn.out_proj.bias.copy_(t(f"{b}.attn.b_O"))
        layer.linear1.weight.copy_(t(f"{b}.ffn.W_1").T)
        layer.linear1.bias.copy_(t(f"{b}.ffn.b_1"))
        layer.linear2.weight.copy_(t(f"{b}.ffn.W_2").T)
        layer.linear2.bias.copy_(t(f"{b}.ffn.b_2"))
        layer.norm1.weight.copy_(t(f"{b}.ln1.gamma"))
        layer.norm1.bias.copy_(t(f"{b}.ln1.beta"))
        layer.norm2.weight.copy_(t(f"{b}.ln2.gamma"))
        layer.norm2.bias.copy_(t(f"{b}.ln2.beta"))
    return layer


def torch_stack(model: Encoder) -> tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """The same encoder in PyTorch: embedding + LayerNorm, then 6 TransformerEncoderLayers."""
    cfg, p = model.config, model.params

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(p[name]))

    layers = torch.nn.ModuleList([torch_layer(model, l) for l in range(cfg.n_layers)])
    layers.eval()
    W_E, W_pos = t("embed.W_E"), t("embed.W_pos")
    gamma, beta = t("embed.ln.gamma"), t("embed.ln.beta")

    def forward(ids: torch.Tensor) -> torch.Tensor:
        x = W_E[ids] + W_pos[: ids.shape[1]]
        x = torch.nn.functional.layer_norm(x, (cfg.d_model,), gamma, beta, cfg.layer_norm_eps)
        for layer in layers:
            x = layer(x)
        return x

    return layers, forward


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` runs of each function, the functions taking turns (one run of
    each per round) so that a change in the machine's load hits all of them alike. The fastest
    run is the least disturbed by other processes. A warm-up round first; a short pause before
    each run lets the other side's idle BLAS / OpenMP threads stop spinning."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            time.sleep(0.02)
            start = time.perf_counter()
            fn()
            if round_ > 0:  # round 0 is the warm-up
                times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def load_average() -> str:
    """The 1-minute load average (other work on the machine), or '?' where unknown."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="BLAS threads on both sides (each count in turn)",
    )
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    model = Encoder(minilm_sized_config(), seed=0)
    _, torch_forward = torch_stack(model)
    rng = np.random.default_rng(0)
    compiled = kernels.handles(np.ones(1, np.float32))
    print("MiniLM-sized encoder, float32; the best of", args.repeats, "interleaved runs;",
          "compiled loops:", "yes" if compiled else "no (numba is not installed)")  # fmt: skip
    print(f"{'threads':>7} {'(batch, seq)':>13} {'torch ms':>9} {'untraced ms':>12} "
          f"{'traced ms':>10} {'pure NumPy ms':>14} {'traced/torch':>13} "
          f"{'pure NumPy/torch':>17} {'trace overhead':>15} {'load':>5}")  # fmt: skip
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads), torch.inference_mode():
            for batch, seq in SHAPES:
                ids = rng.integers(0, model.config.vocab_size, size=(batch, seq))
                ids_t = torch.from_numpy(ids)
                diff = np.abs(torch_forward(ids_t).numpy() - model(ids)).max()
                assert diff < 1e-3, f"NumPy and PyTorch disagree by {diff}"
                seconds = interleaved_times(
                    {
                        "torch": lambda ids_t=ids_t: torch_forward(ids_t),
                        "plain": lambda ids=ids: model(ids),
                        "traced": lambda ids=ids: model.run_with_trace(ids),
                        "pure": lambda ids=ids: pure_numpy_trace(model, ids),
                    },
                    args.repeats,
                )
                t_torch, t_plain, t_trace = seconds["torch"], seconds["plain"], seconds["traced"]
                t_pure = seconds["pure"]
                print(
                    f"{threads:7d} {str((batch, seq)):>13} {t_torch * 1e3:9.1f} "
                    f"{t_plain * 1e3:12.1f} {t_trace * 1e3:10.1f} {t_pure * 1e3:14.1f} "
                    f"{t_trace / t_torch:13.2f} {t_pure / t_torch:17.2f} "
                    f"{t_trace / t_plain - 1:+15.1%} {load_average():>5}"
                )


def pure_numpy_trace(model: Encoder, ids: np.ndarray) -> object:
    """The traced pass with the compiled loops switched off: every function computed by NumPy."""
    with kernels.switched_off():
        return model.run_with_trace(ids)


if __name__ == "__main__":
    main()
