"""The model reuses the memory earlier passes freed instead of faulting in fresh pages."""

from __future__ import annotations

import os
import platform
import resource

import numpy as np
import pytest

from minitransformer import Encoder, EncoderConfig
from minitransformer.memory import keep_freed_memory

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="malloc tuning is for glibc; elsewhere keep_freed_memory changes nothing",
)


def page_faults(fn) -> int:
    """Minor page faults (pages the kernel handed out) while ``fn()`` runs."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc_only
def test_a_second_traced_pass_reuses_the_memory_of_the_first(monkeypatch):
    for name in [n for n in os.environ if n.startswith("MALLOC_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    config = EncoderConfig(vocab_size=50, d_model=128, n_heads=4, n_layers=4, d_ff=512, max_len=128)
    model = Encoder(config, seed=0)
    ids = np.random.default_rng(0).integers(0, 50, size=(4, 128))
    _, trace = model.run_with_trace(ids)
    pages = trace.nbytes // resource.getpagesize()  # about 35 MB: 8,600 pages
    del trace  # freed: the next pass may reuse it
    faults = page_faults(lambda: model.run_with_trace(ids))
    # glibc's defaults return the freed trace to the kernel: about `pages` faults again
    assert faults < pages // 10, f"{faults} page faults for a trace of {pages} pages"


def test_keep_freed_memory_leaves_a_user_tuned_malloc_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert keep_freed_memory() is False
