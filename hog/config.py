"""What one run is asked to do: ``RunConfig``, and the checks and conversions that
build it (``--gpus`` into slots, the source's identity in the store)."""
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

from hog.gpus.discovery import discover
from hog.gpus.spec import parse_gpus
from hog.sources.producer import SourceSpec


@dataclass(frozen=True)
class RunConfig:
    source: Optional[SourceSpec]
    slots: Tuple[str, ...]
    output_dir: str = "output"
    prefix: str = "job_"
    grace: float = 5.0
    display: str = "auto"   # auto | live | plain | quiet
    keep_alive: bool = False
    fresh: bool = False
    resources: Tuple[Tuple[str, float], ...] = ()
    gpu_memory: Tuple[Tuple[str, float], ...] = ()   # (gpu id or "*", bytes)
    cpu_slots: Optional[int] = None                  # default: as many as GPU slots
    min_free_memory: Optional[float] = None
    exclusive: bool = False
    wait_for_running: bool = False
    on_job_end: Optional[str] = None                 # notification hooks (hog.hooks)
    on_finish: Optional[str] = None
    hook_timeout: float = 30.0
    backend: str = "local"                           # local | ray
    ray_address: Optional[str] = None                # None: a local Ray instance
    ray_gpus: Optional[Tuple[str, ...]] = None       # GPU ids of a local Ray instance


def source_key(source: SourceSpec) -> str:
    if source.kind == "python":             # a label, not a file
        return f"python:{source.path}"
    return f"{source.kind}:{os.path.abspath(source.path)}"


def slots_for(spec: Optional[str]) -> List[str]:
    return parse_gpus(spec, discover)
