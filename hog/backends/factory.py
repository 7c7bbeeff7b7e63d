"""``make_backend``: the backend a run asks for, and its admission."""
from typing import Any, Callable, Dict, Iterable, Tuple

from hog.backends.base import Admission, Backend
from hog.backends.local import LocalBackend
from hog.backends.scheduler import Capacity, Scheduler
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


BackendFactory = Callable[[Any, Any, Layout, Any], Tuple[Backend, Admission]]


def make_backend(config, ctx, layout: Layout, flags) -> Tuple[Backend, Admission]:
    """The backend ``config`` asks for, and its admission."""
    if getattr(config, "backend", "local") == "ray":
        from hog.backends.ray.backend import RayBackend  # the Ray bridge: only for --backend ray
        ray = RayBackend(config, ctx, layout, flags)
        return ray, ray.admission
    sched = local_scheduler(config)
    return LocalBackend(ctx, layout, config.grace, sorted(sched.slots), config.slots), sched
