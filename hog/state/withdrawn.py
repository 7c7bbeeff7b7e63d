"""The withdrawn flags: ``<output_dir>/.hog/withdrawn/<id>.<attempt>``, left by ``hog
kill`` for a job already handed to a slot as its next job, read by that slot before it
starts the job (it then does not), cleared once the attempt is settled.
"""
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:       # jobdir imports this module: the type only, for the hints
    from hog.state.jobdir import Layout

__all__ = ["WITHDRAWN_DIR", "withdrawn_flag", "flag_withdrawn", "clear_withdrawn"]

WITHDRAWN_DIR = "withdrawn"    # in STATE_DIR: "<id>.<attempt>", a handed job cancelled


def withdrawn_flag(state_dir: str, index: int, attempt: int) -> str:
    return os.path.join(state_dir, WITHDRAWN_DIR, f"{index}.{attempt}")


def flag_withdrawn(state_dir: str, index: int, attempt: int) -> None:
    """Leave the flag a slot reads before it starts a handed job (``hog kill``)."""
    path = withdrawn_flag(state_dir, index, attempt)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))


def clear_withdrawn(layout: "Layout", index: int, attempt: int) -> None:
    try:
        os.unlink(layout.withdrawn_flag(index, attempt))
    except OSError:
        pass
