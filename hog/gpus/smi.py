"""GPU samples from ``nvidia-smi``: each GPU's memory and utilisation, and the
processes holding GPU memory. One ``nvidia-smi`` call per query; used where NVML
(``hog.gpus.nvml``) is not installed."""
from dataclasses import dataclass
from typing import Dict, List, Optional

from hog.gpus.discovery import ComputeApp, Gpu, _int, _nvidia_smi, query_compute_apps

GPU_QUERY = "query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu"
PLAIN_QUERY = "query-gpu=index,uuid,name,memory.total,memory.used"


@dataclass(frozen=True)
class Sample:
    """One look at every GPU: the GPUs, the processes on them and each GPU's utilisation
    in percent by UUID (None where not reported)."""

    gpus: List[Gpu]
    apps: List[ComputeApp]
    util: Dict[str, Optional[float]]


class SmiReader:
    """Asks ``nvidia-smi``; ``read`` is None when it is missing or fails."""

    name = "nvidia-smi"

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout
        self.with_util = True       # False once nvidia-smi refused utilization.gpu

    def read(self) -> Optional[Sample]:
        rows = _nvidia_smi(GPU_QUERY, self.timeout) if self.with_util else None
        if rows is None:
            rows = _nvidia_smi(PLAIN_QUERY, self.timeout)
            if rows is None:
                return None
            self.with_util = False
        gpus: List[Gpu] = []
        util: Dict[str, Optional[float]] = {}
        for r in rows:
            if len(r) < 5 or not r[0].isdigit():
                continue
            gpus.append(Gpu(r[0], r[1], r[2], _int(r[3]), _int(r[4])))
            value = _int(r[5]) if len(r) >= 6 else None
            util[r[1]] = None if value is None else float(value)
        apps = query_compute_apps(self.timeout)
        if apps is None:
            return None
        return Sample(gpus, apps, util)
