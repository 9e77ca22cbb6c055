"""glibc malloc settings for the processes that train or run the LorentzNet teacher.

Process-wide, so only programs set them (the `trigger-kd` command, the torchrun entry point of
`train.teacher`, the teacher benchmark), never a library function a user's own program calls.
"""
from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Let glibc's malloc serve blocks up to `limit` bytes from its heap and keep freed memory there.

    A teacher training step allocates and frees the same large blocks every step (the edge kernel keeps
    about 10 MB of activations per block at quick size); by default glibc maps each from the OS and unmaps
    it on free, so every step pays the page faults again (about 1 ms per 10 MB here, 5 % of a quick
    teacher step). Harmless for this project's programs (the memory stays reserved for reuse: the peak RSS
    of the step, not more). Returns whether glibc accepted the settings (False elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, limit)) and bool(libc.mallopt(M_TRIM_THRESHOLD, limit))
    except (OSError, AttributeError):
        return False
