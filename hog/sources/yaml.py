"""YAML job files: ``defaults``, a ``jobs`` list, and sweeps over parameter grids.

```yaml
defaults: {gpus: 1, timeout: 2h}
jobs:
  - python prep.py                           # a command string
  - cmd: python train.py --big               # a mapping: cmd + job options
    name: big
    gpus: 2
    after: [prep]
  - sweep:                                   # one job per point of the grid
      cmd: python train.py --lr {lr} --seed {seed}
      name: train                            # jobs are named train-lr=0.1-seed=1, ...
      grid: {lr: [0.1, 0.01], seed: [1, 2, 3]}
      after: [prep]
```

A top-level ``sweeps:`` list is accepted too. ``{key}`` in ``cmd`` (and in ``name``)
is replaced by the grid value, and a ``{word}`` that is not a grid key is an error (a
parameter left out of the grid would otherwise reach every job as text); ``{{word}}``
is a literal ``{word}``. Other braces (``${VAR}``, ``{a,b}``, ``{}``) are left to bash.
Errors name the file, the line and the entry.
"""
import itertools
import re
from typing import Any, Dict, Iterator, List, Mapping, Tuple

import yaml

from hog.errors import InputError
from hog.model import Job
from hog.sources.joboptions import KNOWN, check_text, job_kwargs, near_miss

# {key} (but ${VAR} stays bash's), or {{key}}: a literal {key}
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}|(?<!\$)\{(\w+)\}")
_TOP = ("defaults", "jobs", "sweeps")
_AUTO_NAME = " auto_name"       # marks an item whose name hog made up (no YAML key has it)


def _lines(text: str) -> Dict[Tuple[str, int], int]:
    """Line numbers of the entries of ``jobs`` and ``sweeps``: (list, i) -> line."""
    out: Dict[Tuple[str, int], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if isinstance(value, yaml.SequenceNode):
                for i, item in enumerate(value.value):
                    out[(key.value, i)] = item.start_mark.line + 1
    return out


def _fill(template: str, point: Mapping[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: "{" + m.group(1) + "}" if m.group(1) is not None
                            else str(point[m.group(2)]), template)


def _check_placeholders(template: str, what: str, grid: Mapping[str, Any], where: str) -> None:
    for m in _PLACEHOLDER.finditer(template):
        key = m.group(2)
        if key is not None and key not in grid:
            raise InputError(f"the sweep's {what} uses {{{key}}}, but the grid has no {key!r} "
                             f"(grid: {', '.join(map(str, grid))}); write {{{{{key}}}}} for a "
                             f"literal {{{key}}}", where)


def _expand_sweep(spec: Any, where: str, n: int) -> Iterator[dict]:
    if not isinstance(spec, Mapping):
        raise InputError("a sweep must be a mapping with cmd and grid", where)
    grid = spec.get("grid")
    if not isinstance(grid, Mapping) or not grid:
        raise InputError("a sweep needs a grid: a mapping of parameter -> list of values", where)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise InputError(f"sweep grid parameter {key!r} needs a non-empty list of values",
                             where)
    cmd = spec.get("cmd")
    if not isinstance(cmd, str) or not cmd.strip():
        raise InputError("a sweep needs a cmd template", where)
    keys = list(grid)
    name = spec.get("name")
    base = str(name) if name is not None else f"sweep{n}"
    _check_placeholders(cmd, "cmd", grid, where)
    if name is not None:
        _check_placeholders(base, "name", grid, where)
    for point_values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, point_values))
        item = {k: v for k, v in spec.items() if k not in ("grid", "cmd", "name")}
        item["cmd"] = _fill(cmd, point)
        if name is not None and _PLACEHOLDER.search(base):
            item["name"] = _fill(base, point)
        else:
            item["name"] = base + "-" + "-".join(f"{k}={v}" for k, v in point.items())
            if name is None:    # "sweep<entry>-...": moves with the entry, not an identity
                item[_AUTO_NAME] = True
        yield item


def yaml_items(path: str) -> Iterator[Tuple[dict, str]]:
    """(job mapping with defaults applied, "file:line (entry)") for each job."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise InputError("not valid UTF-8", path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise InputError(f"not valid YAML: {getattr(e, 'problem', None) or e}", where) from None
    if data is None:
        return
    if isinstance(data, list):
        data = {"jobs": data}
    if not isinstance(data, Mapping):
        raise InputError("expected a mapping with 'jobs' (and optionally 'defaults', "
                         "'sweeps')", path)
    extra = set(data) - set(_TOP)
    if extra:
        raise InputError(f"unknown top-level key(s) {', '.join(sorted(map(str, extra)))}; "
                         f"expected {', '.join(_TOP)}", path)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise InputError("'defaults' must be a mapping of job options", path)
    bad = set(defaults) - (set(KNOWN) - {"cmd"})
    if bad:
        guesses = [f"{k!r}: did you mean {near_miss(str(k), KNOWN)!r}?"
                   for k in sorted(bad, key=str) if near_miss(str(k), KNOWN)]
        raise InputError(f"defaults: unknown job option {guesses[0]}" if guesses else
                         f"defaults: unknown job option(s) {', '.join(sorted(bad))}", path)
    lines = _lines(text)
    for section in ("jobs", "sweeps"):
        entries = data.get(section) or []
        if not isinstance(entries, list):
            raise InputError(f"'{section}' must be a list", path)
        for i, entry in enumerate(entries):
            line = lines.get((section, i))
            where = f"{path}:{line} ({section}[{i}])" if line else f"{path} ({section}[{i}])"
            if section == "sweeps" or (isinstance(entry, Mapping) and "sweep" in entry):
                spec = entry.get("sweep", entry) if isinstance(entry, Mapping) else entry
                if isinstance(entry, Mapping) and "sweep" in entry and len(entry) > 1:
                    raise InputError("a sweep entry holds only 'sweep:'; put options inside it",
                                     where)
                for item in _expand_sweep(spec, where, i):
                    yield {**defaults, **item}, where
            elif isinstance(entry, str):
                yield {**defaults, "cmd": entry}, where
            elif isinstance(entry, Mapping):
                yield {**defaults, **entry}, where
            else:
                raise InputError(f"a job must be a command string or a mapping with cmd, "
                                 f"not {type(entry).__name__}", where)


def yaml_jobs(path: str) -> Iterator[Job]:
    """Jobs of a YAML file; dependencies are checked over the whole file first."""
    items: List[Tuple[dict, str]] = list(yaml_items(path))
    jobs = []
    for index, (item, where) in enumerate(items):
        command = item.get("cmd")
        if not isinstance(command, str) or not command.strip():
            raise InputError("a job needs a non-empty 'cmd'", where)
        check_text(command, "the command", where)
        auto_name = bool(item.pop(_AUTO_NAME, False))
        jobs.append(Job(index=index, command=command, where=where, auto_name=auto_name,
                        **job_kwargs(item, where)))
    check_dependencies(jobs)
    return iter(jobs)


def check_dependencies(jobs: List[Job]) -> None:
    """Unknown names in ``after`` and cycles are input errors naming the jobs."""
    by_name: Dict[str, List[Job]] = {}
    for job in jobs:
        if job.name:
            by_name.setdefault(job.name, []).append(job)
    for job in jobs:
        for dep in job.after:
            if dep not in by_name:
                raise InputError(f"job {job.name or job.index} is after {dep!r}, but no job "
                                 f"is named {dep!r}", job.where)
    state: Dict[int, int] = {}      # 1 visiting, 2 done

    def visit(job: Job, path: List[str]) -> None:
        label = job.name or str(job.index)      # a job in a cycle is always named
        if state.get(job.index) == 2:
            return
        if state.get(job.index) == 1:
            cycle = path[path.index(label):] + [label]
            raise InputError(f"dependency cycle: {' -> '.join(cycle)}", job.where)
        state[job.index] = 1
        for dep in job.after:
            for other in by_name[dep]:
                visit(other, path + [label])
        state[job.index] = 2

    for job in jobs:
        visit(job, [])
