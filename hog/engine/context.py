"""The process context of a run (``multiprocess``'s fork context), and how the hog
command loads ``multiprocess``.

``multiprocess`` pickles with ``dill`` when it can import it, and importing ``dill``
(with the logging, ctypes, tempfile and pathlib it loads) is about 40 ms: a third of
the time from starting hog to its first job. hog's processes need none of it: they are
forked, so nothing is pickled to start one, and every message is pickled by hog itself
with the standard library (``hog.backends.wire``, ``hog.sources.producer``). So the hog
command has ``multiprocess`` load with the standard pickle, the fallback its reduction
module takes when ``dill`` cannot be imported (``standard_pickling``). ``dill`` stays
installed and importable. A sweep whose source is the user's Python code (a yielder
file, which runs in hog's producer and may use ``multiprocess`` itself, say to send a
lambda to a pool) keeps ``dill``, as does a program that runs sweeps through
``hog.run``: there ``multiprocess`` is left as the user's process loads it.
"""
import sys
from typing import Any, Optional

from hog.sources import SourceSpec


def runs_user_python(source: Optional[SourceSpec]) -> bool:
    """Does the sweep's source (None: the queue alone) run the user's Python code in
    hog's processes? A yielder file does; text, YAML, stdin and watched directories do
    not (their jobs are bash)."""
    return source is not None and source.kind in ("yielder", "python")


def standard_pickling() -> None:
    """Load ``multiprocess`` so that it pickles with the standard library: ``dill`` is
    hidden while it loads, then importable again. Nothing changes once either of them
    is loaded. For the hog command's own process only, before it imports the engine."""
    if "multiprocess" in sys.modules or "dill" in sys.modules:
        return
    sys.modules["dill"] = None      # type: ignore[assignment]  # import dill: ImportError
    try:
        import multiprocess.reduction  # noqa: F401  (binds its pickle module now)
    finally:
        del sys.modules["dill"]


def fork_context() -> Any:
    """The context the producer and the slot processes are started with."""
    import multiprocess
    return multiprocess.get_context("fork")
