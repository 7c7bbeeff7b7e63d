"""Did an attempt run out of GPU memory? Told from the end of its stderr.

``oom_error(text)`` is pure: the line of ``text`` that names a GPU out-of-memory error
(PyTorch's ``torch.OutOfMemoryError`` / "CUDA out of memory", TensorFlow's and JAX's
``RESOURCE_EXHAUSTED: Out of memory``, XLA's "Resource exhausted", cuBLAS's
``CUBLAS_STATUS_ALLOC_FAILED``, cuDNN's ``CUDNN_STATUS_ALLOC_FAILED``, the CUDA
runtime's "out of memory" error), or None. ``err_tail`` reads the last ``TAIL_BYTES``
of a job's ``.ERR`` (never through a link).
"""
import os
import re
from typing import Optional

from hog.state.files import open_read

TAIL_BYTES = 64 * 1024

_OOM = re.compile(
    r"CUDA out of memory"
    r"|OutOfMemoryError"
    r"|RESOURCE_EXHAUSTED"
    r"|Resource exhausted"
    r"|CUBLAS_STATUS_ALLOC_FAILED"
    r"|CUDNN_STATUS_ALLOC_FAILED"
    r"|cudaErrorMemoryAllocation"
    r"|CUDA_ERROR_OUT_OF_MEMORY"
    r"|CUDA error: out of memory"
    r"|HIP out of memory",
    re.IGNORECASE)


def oom_error(text: str) -> Optional[str]:
    """The last line of ``text`` naming a GPU out-of-memory error (at most 200
    characters), or None."""
    found = None
    for line in text.splitlines():
        if _OOM.search(line):
            found = line.strip()
    return None if found is None else found[:200]


def err_tail(path: str, max_bytes: int = TAIL_BYTES) -> str:
    """The last ``max_bytes`` of the file at ``path`` as text ('' if it cannot be read)."""
    try:
        with open(open_read(path), "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
