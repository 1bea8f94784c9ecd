"""Keep TensorFlow out of the garbage collector's way, and give an unloaded version back.

A full GC pass walks every object the collector tracks, holding the GIL: measured here, the
~390k objects that importing TensorFlow and the engine leave take 195 ms a pass, the p99 of a
server that lets it happen. So they are frozen out of collection once, before any
model loads. Models stay collectable: MobileNetV2 loaded adds only ~14k objects (a pass over
them: 1.6 ms), and an unloaded version's graph sits in reference cycles that only the collector
frees, so frozen models would never be given back (TensorFlow Serving's issues #1664 and
#2142: memory not released on unload). An unload collects them at once and hands the freed
pages to the OS: glibc keeps them for reuse otherwise, and RSS would never come down.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: its allocator has no malloc_trim
        return None


_MALLOC_TRIM = _glibc_malloc_trim()


def freeze_imports() -> None:
    """Before the first load: what the imports left leaves every later GC pass."""
    gc.collect()
    gc.freeze()


def trim() -> None:
    """Hand the pages glibc keeps for reuse back to the OS (nothing for other allocators)."""
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


def release_unloaded() -> None:
    """After an unload: free the dropped version's cycles and return its memory to the OS."""
    gc.collect()
    trim()
