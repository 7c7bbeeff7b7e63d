"""What a job asks of Ray: its resources (``demand``, which the admission also uses to
tell what can never fit), the options of its task, and the cluster's live nodes."""
from typing import Dict, List

BACKPRESSURE = 32          # output items a task may have in flight to the bridge


def demand(job) -> Dict[str, float]:
    """What a job asks Ray for: GPUs, CPUs (none for a GPU job unless it says CPU=n;
    one for a CPU-only job), and its named resources."""
    resources = dict(job.resources)
    need = {"GPU": float(job.gpus), "CPU": float(resources.pop("CPU", 0 if job.gpus else 1))}
    need.update(resources)
    return need


def task_options(job, name: str) -> dict:
    need = demand(job)
    gpus, cpus = need.pop("GPU"), need.pop("CPU")
    return dict(num_gpus=int(gpus) if gpus.is_integer() else gpus,
                num_cpus=int(cpus) if cpus.is_integer() else cpus, resources=need,
                max_retries=0, retry_exceptions=False, name=f"hog {name}",
                _generator_backpressure_num_objects=BACKPRESSURE)


def alive_nodes(ray) -> List[Dict[str, float]]:
    return sorted((dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")),
                  key=lambda r: sorted(r.items()))
