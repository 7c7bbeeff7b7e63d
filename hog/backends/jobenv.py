"""The job's environment: the one place that says what a job sees.

A job inherits its runner's (or Ray node's) environment, with ``CUDA_DEVICE_ORDER``
defaulting to ``PCI_BUS_ID`` so GPU ids mean what ``nvidia-smi`` shows; then the job's
own ``env``; then hog's: ``CUDA_VISIBLE_DEVICES`` (its GPUs only), ``HOG_JOB_INDEX``,
``HOG_JOB_NAME``, ``HOG_JOB_DIR``, ``HOG_SLOT`` and ``HOG_ATTEMPT``, which a job's own
``env`` cannot override. ``FASTGPU_ID`` is the job's GPU id(s) as in
``CUDA_VISIBLE_DEVICES``, for scripts written for fastgpu (every job has it, not only
watched scripts: a script does not change with the way it is queued); a job's own
``env`` may set it.
"""
from typing import Dict, Iterable, Mapping

from hog.messages import Dispatch
from hog.model import slot_label


def job_env(base: Mapping[str, str], d: Dispatch, gpu_ids: Iterable[str],
            folder: str) -> Dict[str, str]:
    """The environment of ``d``'s job on ``gpu_ids``, writing into ``folder``, on top of
    ``base`` (the inherited environment)."""
    env = dict(base)
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    env["FASTGPU_ID"] = ",".join(gpu_ids)
    env.update(d.job.env)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
    env["HOG_JOB_INDEX"] = str(d.job.index)
    env["HOG_JOB_NAME"] = d.name
    env["HOG_JOB_DIR"] = folder             # (job_dir_variable: recovery finds it by this)
    env["HOG_SLOT"] = slot_label(d.slot)
    env["HOG_ATTEMPT"] = str(d.attempt)
    return env


def job_dir_variable(folder: str) -> str:
    """``HOG_JOB_DIR=folder`` as it is in the environment of the job writing into
    ``folder`` and of everything it starts: how recovery finds what is left of a job
    that left its process group and session."""
    return f"HOG_JOB_DIR={folder}"
