"""Why a job can never run on a runner's local capacity (the local ``Scheduler``'s
``never_fits``): one line that names what the job asks for and what this runner has,
or None when it could run here some day. Pure, like the scheduler."""
from typing import AbstractSet, Dict, List, Optional, Sequence, Tuple

from hog.model import Job
from hog.placement import MEMORY


def job_memory(job: Job) -> float:
    return dict(job.resources).get(MEMORY, 0.0)


def named_resources(job: Job) -> List[Tuple[str, float]]:
    return [(k, v) for k, v in job.resources if k != MEMORY]


def gpu_order(gpu: str):
    return (0, int(gpu), "") if gpu.isdigit() else (1, 0, gpu)


def why_never_fits(job: Job, all_gpus: Sequence[str], excluded: AbstractSet[str],
                   cpu_total: int, cpu_only: bool, gpu_memory: Dict[str, float],
                   resources: Dict[str, float]) -> Optional[str]:
    """``all_gpus``: this runner's GPU ids; ``excluded``: those quarantined."""
    gpus = [g for g in all_gpus if g not in excluded]
    if job.gpu_ids and job.gpus and set(job.gpu_ids) & excluded \
            and set(job.gpu_ids) <= set(all_gpus):
        held = sorted(set(job.gpu_ids) & excluded, key=gpu_order)
        return f"must run on GPU {','.join(job.gpu_ids)}; GPU {','.join(held)} is " \
               f"quarantined (hog gpus DIR --release GPU lets it serve again)"
    if job.gpus != int(job.gpus):
        return f"asks for a fraction of a GPU (gpus={job.gpus:g}), which needs " \
               f"--backend ray; here, list a GPU id twice in --gpus to share it"
    if job.gpus == 0:
        if cpu_total == 0:
            return "is a CPU-only job (gpus=0); this runner has no CPU slots (--cpu_slots)"
    elif job.gpu_ids:
        missing = [g for g in job.gpu_ids if g not in gpus]
        if missing:
            return f"must run on GPU {','.join(job.gpu_ids)}; this runner has no GPU " \
                   f"{','.join(missing)}"
        if len(job.gpu_ids) < job.gpus:
            return f"needs {job.gpus} GPUs but is pinned to {len(job.gpu_ids)}"
    elif job.gpus > len(gpus):
        return f"needs {job.gpus} GPUs; this runner has {len(gpus)}" if not cpu_only \
            else f"needs {job.gpus:g} GPU(s); this runner has none (--gpus none: CPU-only)"
    memory = job_memory(job)
    if memory and job.gpus:
        if not gpu_memory:
            return f"needs memory={_size(memory)} per GPU; this runner knows no GPU memory " \
                   f"(no nvidia-smi: give --gpu_memory)"
        allowed = job.gpu_ids or gpus
        fitting = [g for g in allowed if gpu_memory.get(g, 0) >= memory]
        if len(fitting) < job.gpus:
            most = max(gpu_memory.get(g, 0) for g in allowed)
            where = "the largest GPU here" if not job.gpu_ids else \
                f"the largest of GPU {','.join(job.gpu_ids)}"
            return f"needs memory={_size(memory)} per GPU; {where} has {_size(most)}"
    for name, amount in named_resources(job):
        if name not in resources:
            return f"needs {name}={amount:g}; this runner has no {name}"
        if amount > resources[name]:
            return f"needs {name}={amount:g}; this runner has {resources[name]:g}"
    return None


def _size(n: float) -> str:
    for unit, scale in (("T", 2 ** 40), ("G", 2 ** 30), ("M", 2 ** 20), ("K", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:g}{unit}"
    return f"{n:g}"
