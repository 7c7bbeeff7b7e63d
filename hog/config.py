"""What one run is asked to do: ``RunConfig``, and every check and conversion that
builds it from typed values (``--gpus`` into slots, ``--resources``, ``--gpu_memory``
and sizes into numbers, what ``--backend ray`` refuses), and the source's identity in
the store.

The command line (``hog.cli.run``) and ``hog.run`` both call ``build_config``: the
command line with the text argparse gives it, ``hog.run`` with Python values (a list
of GPU ids, a mapping of resources, sizes as numbers). The error messages name the
command line's options, whichever called.
"""
import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from hog.errors import InputError, UsageError
from hog.gpus.discovery import check_visible, discover
from hog.gpus.spec import MAX_SLOTS, is_none, parse_gpus
from hog.sources import SourceSpec
from hog.sources.joboptions import job_kwargs, parse_amount
from hog.sources.text import STDIN, check_readable

Amount = Union[str, int, float]
GpuSpec = Union[str, int, Iterable[Union[str, int]], None]


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
    timeout: Optional[float] = None                  # every job's, unless it has its own
    retries: Optional[int] = None                    # every job's, unless it has its own
    max_failures: Optional[int] = None               # then start nothing new (engine/limits)
    quarantine_after: int = 3          # fast failures in a row that quarantine a GPU (0: off)
    quarantine_within: float = 60.0    # seconds from its start that make a failure fast
    oom_retry: bool = True             # rerun a GPU out-of-memory failure alone, once
    resume_on_boot: Tuple[str, ...] = ()             # hog's arguments at boot (hog.boot)
    wait_for_same_gpus: bool = False                 # --wait-for-running on these GPUs only


# The options of a sweep (those of ``build_config`` after the source), as ``hog.run``
# takes them as keywords; the command line has the same ones as --flags.
# As many CPU-only slots as GPU slots at most (the bound of a --gpus spec): each is a
# process of its own.

OPTIONS = ("gpus", "output_dir", "prefix", "grace", "display", "keep_alive", "fresh",
           "resources", "gpu_memory", "cpu_slots", "min_free_memory", "exclusive",
           "wait_for_running", "on_job_end", "on_finish", "hook_timeout", "backend",
           "ray_address", "quarantine_after", "quarantine_within", "oom_retry", "timeout",
           "retries", "max_failures", "wait_for_same_gpus")

# Options a Ray run refuses, and why.
RAY_IGNORES = (("resources", "declare resources on the nodes: ray start --resources"),
               ("gpu_memory", "ask for fractions of a GPU instead (gpus=0.5)"),
               ("cpu_slots", "CPU-only jobs take one CPU of the cluster each (or CPU=n)"),
               ("min_free_memory", "it watches this machine's GPUs only"),
               ("exclusive", "it watches this machine's GPUs only"),
               ("wait_for_running", "it watches this machine's runners only"),
               ("wait_for_same_gpus", "it watches this machine's runners only"))


def build_config(source: Optional[SourceSpec], *, gpus: GpuSpec = None,
                 output_dir: Union[str, "os.PathLike[str]"] = "output", prefix: str = "job_",
                 grace: float = 5.0, display: str = "auto", keep_alive: bool = False,
                 fresh: bool = False,
                 resources: Union[str, Mapping[str, Amount], None] = None,
                 gpu_memory: Union[str, int, float, Mapping[Any, Amount], None] = None,
                 cpu_slots: Optional[int] = None,
                 min_free_memory: Optional[Amount] = None, exclusive: bool = False,
                 wait_for_running: bool = False, on_job_end: Optional[str] = None,
                 on_finish: Optional[str] = None, hook_timeout: float = 30.0,
                 backend: str = "local", ray_address: Optional[str] = None,
                 quarantine_after: int = 3, quarantine_within: float = 60.0,
                 oom_retry: bool = True, timeout: Union[str, float, None] = None,
                 retries: Optional[int] = None, max_failures: Optional[int] = None,
                 resume_on_boot: Sequence[str] = (),
                 wait_for_same_gpus: bool = False) -> RunConfig:
    """The run's configuration, checked (``UsageError`` if an option is bad).

    ``gpus``: a spec (``"0,0,1"``, ``"0-3x2"``, ``"all"``) or GPU ids (``[0, 0, 1]``);
    ``resources``: ``"license=2 disk=1"`` or ``{"license": 2}``; ``gpu_memory``: a size
    for every GPU (``"80G"``, or bytes), ``"0=80G,1=40G"`` or ``{"0": "80G"}``;
    ``min_free_memory``: a size (``"10G"``, or bytes); ``gpus="none"``: CPU slots only
    (``cpu_slots`` defaults to the number of cores); ``timeout`` (``"30m"``, or
    seconds) and ``retries``: every job's, unless it sets its own; ``max_failures``:
    start nothing new once that many jobs failed; ``resume_on_boot``: the hog arguments
    that resume the sweep after a reboot (the command line's, ``hog.boot``)."""
    spec = _gpu_spec(gpus)
    limits = sweep_limits(timeout, retries, max_failures)
    if not prefix or "/" in prefix or prefix.startswith("."):
        raise UsageError(f"--prefix {prefix!r}: must be non-empty, without '/', "
                         f"and not start with '.'")
    if grace < 0:
        raise UsageError("--grace must be 0 or more seconds")
    if hook_timeout <= 0:
        raise UsageError("--hook_timeout must be more than 0 seconds")
    if quarantine_after < 0 or not 0 <= quarantine_within < float("inf"):
        raise UsageError("--quarantine-after and --quarantine-within must be 0 (off) or more")
    ray_gpus = None
    if backend == "ray":
        ray_gpus = ray_options(spec, ray_address, resources=resources,
                               gpu_memory=_size_text(gpu_memory), cpu_slots=cpu_slots,
                               min_free_memory=_size_text(min_free_memory),
                               exclusive=exclusive, wait_for_running=wait_for_running,
                               wait_for_same_gpus=wait_for_same_gpus)
        slots: List[str] = []
    elif ray_address is not None:
        raise UsageError("--ray_address is for --backend ray")
    else:
        slots = slots_for(spec)
    if is_none(spec) and cpu_slots is None and backend != "ray":
        cpu_slots = min(os.cpu_count() or 1, MAX_SLOTS)   # a CPU-only runner
    if cpu_slots is not None and cpu_slots < 0:
        raise UsageError("--cpu_slots must be 0 or more")
    if cpu_slots is not None and cpu_slots > MAX_SLOTS:
        raise UsageError(f"--cpu_slots {cpu_slots}: more than {MAX_SLOTS} slots; hog runs "
                         f"at most {MAX_SLOTS} slots at once (each is a process)")
    if not os.fspath(output_dir).strip():
        raise UsageError("--output_dir: must not be empty")
    min_free = parse_min_free_memory(min_free_memory)
    return RunConfig(source=source, slots=tuple(slots), output_dir=os.fspath(output_dir),
                     prefix=prefix, grace=grace, display=display, keep_alive=keep_alive,
                     fresh=fresh, resources=parse_resources(resources),
                     gpu_memory=parse_gpu_memory(gpu_memory), cpu_slots=cpu_slots,
                     min_free_memory=min_free,
                     exclusive=exclusive,
                     wait_for_running=wait_for_running or wait_for_same_gpus,
                     wait_for_same_gpus=wait_for_same_gpus,
                     on_job_end=on_job_end, on_finish=on_finish, hook_timeout=hook_timeout,
                     backend=backend, ray_address=ray_address, ray_gpus=ray_gpus,
                     quarantine_after=quarantine_after, quarantine_within=quarantine_within,
                     oom_retry=oom_retry, resume_on_boot=tuple(resume_on_boot), **limits)


def sweep_limits(timeout: Union[str, float, None], retries: Optional[int],
                 max_failures: Optional[int]) -> Dict[str, Any]:
    """``--timeout``, ``--retries`` (checked as a job's own are) and ``--max-failures``,
    as RunConfig fields."""
    checked: Dict[str, Any] = {}
    for name, value in (("timeout", timeout), ("retries", retries)):
        if value is not None:
            try:
                checked.update(job_kwargs({name: value}, ""))
            except InputError as e:     # "bad value ... for 'timeout': expected ..."
                raise UsageError(f"--{name} {value!r}: {str(e).split(': ', 1)[-1]}") from None
    if max_failures is not None and (isinstance(max_failures, bool)
                                     or not isinstance(max_failures, int) or max_failures < 1):
        raise UsageError(f"--max_failures {max_failures!r}: expected a whole number, 1 or more")
    return {"timeout": checked.get("timeout"), "retries": checked.get("retries"),
            "max_failures": max_failures}


def file_source(path: Union[str, "os.PathLike[str]"], yielder: bool = False) -> SourceSpec:
    """The source of a job file (text, or YAML by its extension) or of a yielder file;
    ``InputError`` if it cannot be read."""
    path = os.fspath(path)
    if path == STDIN and not yielder:
        return SourceSpec("stdin", STDIN)
    if yielder:
        check_readable(path, "yielder file")
        return SourceSpec("yielder", path)
    check_readable(path, "job file")
    return SourceSpec("yaml" if path.lower().endswith((".yaml", ".yml")) else "text", path)


def source_key(source: SourceSpec) -> str:
    if source.kind in ("python", "stdin"):  # a label, not a file
        return f"{source.kind}:{source.path}"
    return f"{source.kind}:{os.path.abspath(source.path)}"


def slots_for(spec: Optional[str]) -> List[str]:
    """The slots of ``--gpus spec``, within an inherited ``CUDA_VISIBLE_DEVICES``."""
    ids = parse_gpus(spec, discover)
    check_visible(spec or "all", ids)
    return ids


def _gpu_spec(gpus: GpuSpec) -> Optional[str]:
    """GPU ids given as a list (or one number) -> the spec they spell: [0, 0, 1] -> 0,0,1."""
    if gpus is None or isinstance(gpus, str):
        return gpus
    if isinstance(gpus, Iterable):
        return ",".join(str(g) for g in gpus)
    return str(gpus)


def _size_text(value: Any) -> Any:
    """A size given as a number of bytes, as the command line would spell it."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value))
    return value


def parse_resources(value: Union[str, Mapping[str, Amount], None]) -> Tuple[Tuple[str, float], ...]:
    """``'foo=12 bar=1'`` (spaces or commas) or ``{"foo": 12, "bar": 1}``
    -> (("bar", 1.0), ("foo", 12.0))."""
    if isinstance(value, Mapping):
        items = [f"{k}={v}" for k, v in value.items()]
    else:
        items = (value or "").replace(",", " ").split()
    out = {}
    for item in items:
        name, eq, amount = item.partition("=")
        try:
            if not eq or not name:
                raise ValueError(item)
            out[name] = parse_amount(amount)
        except ValueError:
            raise UsageError(f"--resources: bad item {item!r} (expected NAME=NUMBER, e.g. "
                             f"'license=2 disk=1')") from None
    return tuple(sorted(out.items()))


def parse_gpu_memory(value: Union[str, int, float, Mapping[Any, Amount], None]
                     ) -> Tuple[Tuple[str, float], ...]:
    """``80G`` (or a number of bytes) -> (("*", bytes),); ``0=80G,1=40G`` or
    ``{"0": "80G", "1": "40G"}`` -> per id."""
    value = _size_text(value)
    if isinstance(value, Mapping):
        items = [f"{k}={v}" for k, v in value.items()]
    elif not value:
        return ()
    else:
        items = str(value).split(",")
    out = []
    for item in items:
        gpu, eq, size = item.strip().rpartition("=")
        try:
            out.append((gpu if eq else "*", parse_amount(size)))
        except ValueError:
            raise UsageError(f"--gpu_memory: bad item {item!r} (expected a size such as 80G, "
                             f"or ID=SIZE)") from None
    return tuple(out)


def parse_min_free_memory(value: Optional[Amount]) -> Optional[float]:
    """``10G`` (or a number of bytes) -> bytes; None stays None."""
    if value is None:
        return None
    text = _size_text(value)
    try:
        return parse_amount(text)
    except ValueError:
        raise UsageError(f"--min_free_memory {text!r}: expected a size such as 10G") from None


def ray_options(gpus: Optional[str], ray_address: Optional[str], **local_only: Any
                ) -> Optional[Tuple[str, ...]]:
    """Check the options of a ``--backend ray`` run (``local_only``: the options of
    ``RAY_IGNORES`` as given); returns the GPU ids of a local Ray instance (None: Ray
    finds them)."""
    for name, why in RAY_IGNORES:
        if local_only.get(name) not in (None, False):
            raise UsageError(f"--{name} does not apply with --backend ray: {why}")
    if importlib.util.find_spec("ray") is None:
        raise UsageError("--backend ray needs Ray on this machine: pip install 'gpu-hog[ray]'")
    if gpus in (None, "all"):
        return None
    if ray_address or os.environ.get("RAY_ADDRESS"):
        raise UsageError("--gpus does not apply to an existing Ray cluster: each node has "
                         "the GPUs it was started with (ray start --num-gpus N)")
    ids = parse_gpus(gpus, discover)
    check_visible(gpus, ids)
    if len(set(ids)) != len(ids):
        raise UsageError(f"--gpus {gpus}: with --backend ray a GPU is listed once; "
                         f"jobs share a GPU by asking for a fraction of it (gpus=0.5)")
    return tuple(ids)
