"""Backends: where dispatched jobs run, and how each attempt is recorded.

``make_backend`` builds the pair the runner works with: a ``Backend`` that runs jobs
and an ``Admission`` that decides which may start (``hog.backends.base``). With
``--backend local`` (the default) those are one consumer process per slot and the
local scheduler over the configured GPU slots; with ``--backend ray``, the Ray bridge
and the admission that hands jobs over to Ray.
"""
from typing import Dict, Iterable, Tuple

from hog.backends.base import Admission, Backend
from hog.backends.local import LocalBackend
from hog.backends.ray.backend import RayBackend
from hog.engine.scheduler import Capacity, Scheduler
from hog.model import Slot
from hog.state.jobdir import Layout


def gpu_memory_of(spec: Iterable[Tuple[str, float]], gpus: Iterable[str]) -> Dict[str, float]:
    """``--gpu_memory`` as bytes per GPU id (``*``: every GPU of ``gpus``)."""
    out: Dict[str, float] = {}
    for gpu, size in spec:
        if gpu == "*":
            out.update({g: size for g in set(gpus)})
        else:
            out[gpu] = size
    return out


def local_scheduler(config) -> Scheduler:
    """The local admission over ``config``'s slots, resources and GPU memory."""
    cpu = config.cpu_slots if config.cpu_slots is not None else len(config.slots)
    return Scheduler(Capacity([Slot(i, g) for i, g in enumerate(config.slots)],
                              resources=dict(config.resources),
                              gpu_memory=gpu_memory_of(config.gpu_memory, config.slots),
                              cpu_slots=cpu))


def make_backend(config, ctx, layout: Layout, flags) -> Tuple[Backend, Admission]:
    """The backend ``config`` asks for, and its admission."""
    if getattr(config, "backend", "local") == "ray":
        ray = RayBackend(config, ctx, layout, flags)
        return ray, ray.admission
    sched = local_scheduler(config)
    return LocalBackend(ctx, layout, config.grace, sorted(sched.slots), config.slots), sched
