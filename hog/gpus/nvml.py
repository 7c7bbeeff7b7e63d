"""GPU samples through NVIDIA's NVML (``pip install gpu-hog[nvml]``, the ``pynvml``
module of ``nvidia-ml-py``): no process started per sample. ``NvmlReader.open`` is
None when the module is missing or NVML cannot start (no driver)."""
from typing import Any, Dict, List, Optional

from hog.gpus.discovery import ComputeApp, Gpu
from hog.gpus.smi import Sample

MIB = 2 ** 20


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlReader:
    name = "NVML"

    def __init__(self, nvml: Any):
        self.nvml = nvml

    @classmethod
    def open(cls) -> Optional["NvmlReader"]:
        try:
            import pynvml  # optional extra: only where it is installed
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
        except Exception:       # NVMLError and whatever a broken driver raises
            return None
        return cls(pynvml)

    def read(self) -> Optional[Sample]:
        nv = self.nvml
        try:
            gpus: List[Gpu] = []
            apps: List[ComputeApp] = []
            util: Dict[str, Optional[float]] = {}
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                uuid = _text(nv.nvmlDeviceGetUUID(h))
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                gpus.append(Gpu(str(i), uuid, _text(nv.nvmlDeviceGetName(h)),
                                int(mem.total) // MIB, int(mem.used) // MIB))
                try:
                    util[uuid] = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
                except Exception:       # not supported on this GPU (MIG, some models)
                    util[uuid] = None
                for p in nv.nvmlDeviceGetComputeRunningProcesses(h):
                    used = getattr(p, "usedGpuMemory", None)
                    apps.append(ComputeApp(uuid, int(p.pid),
                                           None if used is None else int(used) // MIB))
        except Exception:       # NVMLError: the driver went away, a GPU fell off the bus
            return None
        return Sample(gpus, apps, util)

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass
