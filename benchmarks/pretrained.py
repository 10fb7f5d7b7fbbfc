"""all-MiniLM-L6-v2 on real text: the NumPy encoder against Hugging Face transformers.

Both sides run the same checkpoint on the same token ids, on the same CPU with the same
number of BLAS threads. Hugging Face's ``BertModel`` uses eager attention with
``output_attentions=True`` (it returns every attention pattern, as our trace does). Prints
median times and the ratios NumPy / transformers for the traced (``run_with_trace``) and the
untraced forward pass, then the time to load the weights (ours: config + safetensors + name
table; transformers: ``BertModel.from_pretrained``).

Wall-clock ratios suffer when other processes share the CPU; the CPU-time ratio (user + system
time of this process) is steadier there. The last column counts the page faults of one traced
pass: the trace keeps every intermediate, so each pass writes to freshly mapped memory, and
the kernel's page faults (system time) are most of the trace's overhead.

    python benchmarks/pretrained.py [--threads N] [--repeats R]

The text is the model card (README.md) shipped with the weights, cut into rows of S tokens.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import transformers
from threadpoolctl import threadpool_limits

from minitransformer.pretrained import find_model_dir, load_encoder, load_pretrained
from minitransformer.tokenizer import WordPieceTokenizer

SHAPES = [(1, 32), (8, 128), (1, 512)]


def real_text_batch(tokenizer: WordPieceTokenizer, text: str, batch: int, seq: int) -> np.ndarray:
    """(batch, seq) token ids: ``[CLS] <seq - 2 word pieces of text> [SEP]`` per row, each row
    a different stretch of the text."""
    pieces = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
    body = seq - 2
    if len(pieces) < batch * body:
        raise ValueError(f"the text has {len(pieces)} word pieces, need {batch * body}")
    cls, sep = tokenizer.vocab[tokenizer.cls_token], tokenizer.vocab[tokenizer.sep_token]
    rows = [[cls, *pieces[b * body : (b + 1) * body], sep] for b in range(batch)]
    return np.array(rows, dtype=np.int64)


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU (user + system) seconds of ``fn()``, after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def page_faults(fn: Callable[[], object]) -> int:
    """Minor page faults (first touches of freshly mapped memory) during ``fn()``."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads on both sides")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    model_dir = find_model_dir("all-MiniLM-L6-v2")
    model, tokenizer = load_pretrained(model_dir)
    hf = transformers.BertModel.from_pretrained(str(model_dir), attn_implementation="eager")
    hf.eval()
    text = (model_dir / "README.md").read_text(encoding="utf-8")

    print(f"all-MiniLM-L6-v2, float32, {args.threads} BLAS thread(s) on both sides, "
          f"median of {args.repeats}")  # fmt: skip
    print(f"{'(batch, seq)':>13} {'HF ms':>7} {'numpy ms':>9} {'traced ms':>10} "
          f"{'untraced/HF':>12} {'traced/HF':>10} {'traced/HF cpu':>14} {'max |diff|':>11} "
          f"{'traced faults':>14}")  # fmt: skip
    with threadpool_limits(limits=args.threads), torch.inference_mode():
        for batch, seq in SHAPES:
            ids = real_text_batch(tokenizer, text, batch, seq)
            ids_t = torch.from_numpy(ids)

            def hf_forward(ids_t: torch.Tensor = ids_t) -> object:
                return hf(input_ids=ids_t, output_attentions=True)

            diff = np.abs(hf_forward().last_hidden_state.numpy() - model(ids)).max()
            assert diff < 1e-3, f"NumPy and transformers disagree by {diff}"
            t_hf, cpu_hf = median_time(hf_forward, args.repeats)
            t_plain, _ = median_time(lambda ids=ids: model(ids), args.repeats)

            def traced(ids: np.ndarray = ids) -> object:
                return model.run_with_trace(ids)

            t_trace, cpu_trace = median_time(traced, args.repeats)
            faults = page_faults(traced)
            print(
                f"{str((batch, seq)):>13} {t_hf * 1e3:7.1f} {t_plain * 1e3:9.1f} "
                f"{t_trace * 1e3:10.1f} {t_plain / t_hf:12.2f} {t_trace / t_hf:10.2f} "
                f"{cpu_trace / cpu_hf:14.2f} {diff:11.1e} {faults:14,}"
            )

        t_ours, _ = median_time(lambda: load_encoder(model_dir), args.repeats)
        t_theirs, _ = median_time(
            lambda: transformers.BertModel.from_pretrained(str(model_dir)), args.repeats
        )
    print(f"\nload weights: ours {t_ours * 1e3:.0f} ms, transformers {t_theirs * 1e3:.0f} ms, "
          f"ratio {t_ours / t_theirs:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
