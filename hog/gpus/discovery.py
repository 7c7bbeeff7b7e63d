"""GPU discovery through ``nvidia-smi``, restricted to ``CUDA_VISIBLE_DEVICES``."""
import os
import shutil
from dataclasses import dataclass
from typing import List, Optional

from hog.errors import UsageError


@dataclass(frozen=True)
class Gpu:
    index: str
    uuid: str
    name: str
    memory_total_mib: Optional[int]
    memory_used_mib: Optional[int]


def _nvidia_smi(query: str, timeout: float) -> Optional[List[List[str]]]:
    """Rows of ``nvidia-smi --QUERY --format=csv,noheader,nounits``, or None when
    nvidia-smi is missing or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    import subprocess  # (only to ask nvidia-smi: 2.5 ms of every start otherwise)
    try:
        out = subprocess.run([exe, f"--{query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [[p.strip() for p in line.split(",")] for line in out.splitlines() if line.strip()]


def query_gpus(timeout: float = 10.0) -> Optional[List[Gpu]]:
    """Every GPU ``nvidia-smi`` reports, or None when nvidia-smi is not available."""
    rows = _nvidia_smi("query-gpu=index,uuid,name,memory.total,memory.used", timeout)
    if rows is None:
        return None
    return [Gpu(r[0], r[1], r[2], _int(r[3]), _int(r[4]))
            for r in rows if len(r) >= 5 and r[0].isdigit()]


@dataclass(frozen=True)
class ComputeApp:
    gpu_uuid: str
    pid: int
    used_mib: Optional[int]


def query_compute_apps(timeout: float = 10.0) -> Optional[List[ComputeApp]]:
    """Processes using each GPU (``nvidia-smi --query-compute-apps``), or None."""
    rows = _nvidia_smi("query-compute-apps=gpu_uuid,pid,used_memory", timeout)
    if rows is None:
        return None
    return [ComputeApp(r[0], int(r[1]), _int(r[2])) for r in rows if len(r) >= 3 and r[1].isdigit()]


def _int(text: str) -> Optional[int]:
    try:
        return int(float(text))
    except ValueError:
        return None


def cvd_entries(cvd: str) -> List[str]:
    """The ids ``CUDA_VISIBLE_DEVICES`` lists, in its order (``02`` is ``2``)."""
    entries = [x.strip() for x in cvd.split(",") if x.strip()]
    return [str(int(x)) if x.isdigit() else x for x in entries]


def visible_ids(gpus: Optional[List[Gpu]], cvd: Optional[str]) -> List[str]:
    """The GPU ids hog may use: discovered ones, in ``CUDA_VISIBLE_DEVICES`` order if set.
    MIG ids pass as they are: ``nvidia-smi --query-gpu`` lists whole GPUs only."""
    if cvd is not None:
        wanted = cvd_entries(cvd)
        if gpus is None:
            return wanted
        known = {g.index for g in gpus} | {g.uuid for g in gpus}
        return [w for w in wanted if w in known or w.startswith("MIG-")]
    return [g.index for g in gpus or []]


def check_visible(spec: str, ids: List[str]) -> None:
    """``UsageError`` unless every id of ``--gpus spec`` is one ``CUDA_VISIBLE_DEVICES``
    (when this process inherited it) lets it use: one of its entries, or the index or
    UUID of a GPU it lists (``nvidia-smi`` is asked only then). The ids pass to the jobs
    unchanged: a job's ``CUDA_VISIBLE_DEVICES`` replaces the inherited one, and CUDA reads
    an entry of it in the job as it does here."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        return
    allowed = set(cvd_entries(cvd))
    outside = [i for i in dict.fromkeys(ids) if i not in allowed]
    if not outside:
        return
    gpus = query_gpus()
    for g in gpus or []:
        if g.index in allowed or g.uuid in allowed:
            allowed.update((g.index, g.uuid))
    outside = [i for i in outside if i not in allowed]
    if outside:
        what = f"GPU {outside[0]} is" if len(outside) == 1 else \
            f"GPUs {','.join(outside)} are"
        raise UsageError(f"--gpus {spec}: {what} not among CUDA_VISIBLE_DEVICES={cvd} "
                         f"(this process may use only those)")


def discover() -> List[str]:
    """Slot ids for ``--gpus all`` (or no ``--gpus``); UsageError when there are none."""
    gpus = query_gpus()
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible_ids(gpus, cvd)
    if ids:
        return ids
    if gpus is None and cvd is None:
        raise UsageError("no --gpus given and nvidia-smi is not available to discover GPUs; "
                         "pass the ids to use, e.g. --gpus 0,1 (ids are labels; any will do "
                         "on a machine without GPUs)")
    raise UsageError(f"no GPU found (nvidia-smi saw {len(gpus or [])}, "
                     f"CUDA_VISIBLE_DEVICES={cvd!r}); pass --gpus explicitly")
