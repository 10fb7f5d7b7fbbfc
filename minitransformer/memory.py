"""Memory for the large arrays of a forward pass: kept for reuse instead of handed back.

Why a transformer toolkit cares: a traced pass of MiniLM on 8 sequences of 128 tokens keeps
320 MB of intermediates, and even an untraced pass allocates and frees tens of MB per block.
On Linux, glibc's ``malloc`` returns freed memory to the kernel as soon as a few MB of it are
free at the top of its heap. The next pass asks the kernel again, and the kernel hands the
memory out 4 KB page by page, each page zero-filled on first touch: tens of thousands of page
faults per pass, a third of a traced pass's time.

:func:`keep_freed_memory` asks ``malloc`` (with ``mallopt``, its documented tuning call) to keep
up to :data:`KEEP_FREED_BYTES` of freed memory for the next arrays. The price: after a large
trace is freed, the process's resident memory stays at its peak (up to that much more) until
the process ends. Elsewhere than glibc (macOS, Windows, musl), or when the user tuned
``malloc`` through the environment, it changes nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: The ``mallopt`` parameters of glibc's ``<malloc.h>``.
M_TRIM_THRESHOLD = -1  # free memory at the heap's top beyond this goes back to the kernel
M_MMAP_THRESHOLD = -3  # blocks at least this large are mapped from the kernel one by one

#: Freed memory ``malloc`` keeps (more than a traced MiniLM pass at (8, 128) or (1, 512)).
KEEP_FREED_BYTES = 512 * 2**20
#: Arrays up to this size come from the reusable heap; larger ones straight from the kernel
#: (32 MB is the ceiling of glibc's own adaptive threshold).
LARGEST_HEAP_BLOCK = 32 * 2**20


def keep_freed_memory() -> bool:
    """Ask glibc's ``malloc`` to keep freed memory for reuse (see the module docstring).

    Returns
    -------
    bool
        True if ``malloc`` was tuned; False on a platform without glibc, or when the
        environment already tunes it (``GLIBC_TUNABLES`` or a ``MALLOC_*_`` variable).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if "GLIBC_TUNABLES" in os.environ or any(name.startswith("MALLOC_") for name in os.environ):
        return False  # the user's own settings win
    libc = ctypes.CDLL(None)  # the C library the interpreter already runs on
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK)
        and libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES)
    )
