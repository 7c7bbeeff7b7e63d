"""The GPU log: what the GPU monitor saw of each GPU over a run (memory in use and
utilisation, every few seconds), one JSON line per look in ``.hog/gpus.jsonl``, for the
report's "GPU memory over time" chart. Appended by the runner on its tick; a write the
disk refuses loses those looks, nothing else."""
import json
import os
from typing import Dict, Iterable, List, Optional, Tuple

from hog.state.jobdir import Layout

GPU_LOG = "gpus.jsonl"

Look = Tuple[float, Dict[str, Tuple[int, Optional[float]]]]


def log_path(layout: Layout) -> str:
    return os.path.join(layout.state_dir, GPU_LOG)


def append_looks(layout: Layout, looks: Iterable[Look]) -> None:
    """Add the looks (time, {GPU index: (bytes used, util %)}) to the log."""
    text = "".join(json.dumps({"t": round(t, 3), "gpus": {g: list(v) for g, v in gpus.items()}})
                   + "\n" for t, gpus in looks)
    if not text:
        return
    try:
        fd = os.open(log_path(layout), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                     0o600)
    except OSError:
        return
    try:
        os.write(fd, text.encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def read_looks(layout: Layout, limit: int = 20000) -> List[Look]:
    """The log's looks in order (at most ``limit``, evenly thinned); [] without one."""
    looks: List[Look] = []
    try:
        with open(log_path(layout), encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    looks.append((float(rec["t"]), {str(g): (int(v[0]), v[1])
                                                    for g, v in rec["gpus"].items()}))
                except (ValueError, KeyError, TypeError, IndexError):
                    continue
    except OSError:
        return []
    if len(looks) > limit:
        step = len(looks) / limit
        looks = [looks[int(i * step)] for i in range(limit)]
    return looks
