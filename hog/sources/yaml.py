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
Errors name the file, the line and the entry. Each job of a grid carries its point
(``Job.params``: the results files show it as ``param.<key>`` columns).

The file is read with PyYAML's C loader when PyYAML has one (the pure-Python loader
otherwise: the same jobs). Everything that can be wrong with the file is checked before
the first job comes out, but a grid's points are made one at a time as the stream is
read, so a grid of a million points starts at once and in constant memory;
``yaml_count`` counts the jobs by multiplying out the grids.
"""
import itertools
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from hog.errors import InputError
from hog.model import Job
from hog.sources.joboptions import KNOWN, check_text, job_kwargs, near_miss

# {key} (but ${VAR} stays bash's), or {{key}}: a literal {key}
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}|(?<!\$)\{(\w+)\}")
_TOP = ("defaults", "jobs", "sweeps")
_AUTO_NAME = " auto_name"       # marks an item whose name hog made up (no YAML key has it)


def loader_class(pure: bool = False) -> type:
    """PyYAML's safe loader: the C one (libyaml) when PyYAML has it, unless ``pure``."""
    if not pure and hasattr(yaml, "CSafeLoader"):
        return yaml.CSafeLoader
    return yaml.SafeLoader


def _load(path: str, pure: bool) -> Tuple[Any, Dict[Tuple[str, int], int]]:
    """The file's data, and the line numbers of the entries of ``jobs`` and ``sweeps``:
    (list, i) -> line. The file is parsed once: the node tree gives both."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise InputError("not valid UTF-8", path) from None
    try:
        try:
            root, data = _parse(text, loader_class(pure))
        except yaml.YAMLError:  # libyaml refuses some text the pure loader takes (a lone
            root, data = _parse(text, yaml.SafeLoader)  # surrogate escape): its verdict
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise InputError(f"not valid YAML: {getattr(e, 'problem', None) or e}", where) from None
    lines: Dict[Tuple[str, int], int] = {}
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if isinstance(value, yaml.SequenceNode):
                for i, item in enumerate(value.value):
                    lines[(key.value, i)] = item.start_mark.line + 1
    return data, lines


def _parse(text: str, loader_type: type) -> Tuple[Any, Any]:
    """(the root node, the data it constructs)."""
    loader = loader_type(text)
    try:
        root = loader.get_single_node()
        return root, None if root is None else loader.construct_document(root)
    finally:
        loader.dispose()


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


def param_value(value: Any) -> Any:
    """A grid value as a job's params keep it: numbers, text and booleans as they are,
    anything else (a date, a list) as the text the command is given."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class _Sweep:
    """One sweep entry, checked but not expanded: its points are made on demand."""

    where: str
    options: Dict[str, Any]     # defaults and the sweep's options, without grid/cmd/name
    keys: Tuple[str, ...]
    values: Tuple[Sequence[Any], ...]
    cmd: str
    name: Optional[str]         # the name template, None: hog names the points
    base: str

    @property
    def size(self) -> int:
        n = 1
        for v in self.values:
            n *= len(v)
        return n

    def _name(self, point: Mapping[str, Any]) -> str:
        if self.name is not None and _PLACEHOLDER.search(self.base):
            return _fill(self.base, point)
        return self.base + "-" + "-".join(f"{k}={v}" for k, v in point.items())

    def could_name(self, name: str) -> bool:
        """False if no point of this sweep can be named ``name`` (checked by pattern)."""
        if self.name is None or not _PLACEHOLDER.search(self.base):
            return name.startswith(self.base + "-")
        parts, at = [], 0
        for m in _PLACEHOLDER.finditer(self.base):
            literal = self.base[at:m.start()]
            parts.append(re.escape(literal))
            parts.append(re.escape("{" + m.group(1) + "}") if m.group(1) is not None else ".*")
            at = m.end()
        parts.append(re.escape(self.base[at:]))
        return re.fullmatch("".join(parts), name, re.DOTALL) is not None

    def points(self) -> Iterator[Dict[str, Any]]:
        for point_values in itertools.product(*self.values):
            yield dict(zip(self.keys, point_values))

    def names(self) -> Iterator[str]:
        return map(self._name, self.points())

    def item(self, point: Mapping[str, Any]) -> dict:
        item = dict(self.options)
        item["cmd"] = _fill(self.cmd, point)
        item["name"] = self._name(point)
        if self.name is None:   # "sweep<entry>-...": moves with the entry, not an identity
            item[_AUTO_NAME] = True
        return item


def _sweep(spec: Any, where: str, n: int, defaults: Mapping[str, Any]) -> _Sweep:
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
    name = spec.get("name")
    base = str(name) if name is not None else f"sweep{n}"
    _check_placeholders(cmd, "cmd", grid, where)
    if name is not None:
        _check_placeholders(base, "name", grid, where)
    options = {**defaults, **{k: v for k, v in spec.items() if k not in ("grid", "cmd", "name")}}
    return _Sweep(where, options, tuple(grid), tuple(grid.values()), cmd, name, base)


_Entry = Union[Tuple[dict, str], _Sweep]      # a plain job (mapping, where) or a sweep


def _entries(path: str, pure: bool) -> List[_Entry]:
    """The file's entries in order, each checked for its shape; sweeps not expanded."""
    data, lines = _load(path, pure)
    if data is None:
        return []
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
    out: List[_Entry] = []
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
                out.append(_sweep(spec, where, i, defaults))
            elif isinstance(entry, str):
                out.append(({**defaults, "cmd": entry}, where))
            elif isinstance(entry, Mapping):
                out.append(({**defaults, **entry}, where))
            else:
                raise InputError(f"a job must be a command string or a mapping with cmd, "
                                 f"not {type(entry).__name__}", where)
    return out


def yaml_items(path: str, pure: bool = False) -> Iterator[Tuple[dict, str]]:
    """(job mapping with defaults applied, "file:line (entry)") for each job."""
    for entry in _entries(path, pure):
        if isinstance(entry, _Sweep):
            for point in entry.points():
                yield entry.item(point), entry.where
        else:
            yield entry


def _job(index: int, item: dict, where: str, params: Tuple[Tuple[str, Any], ...] = ()) -> Job:
    command = item.get("cmd")
    if not isinstance(command, str) or not command.strip():
        raise InputError("a job needs a non-empty 'cmd'", where)
    check_text(command, "the command", where)
    auto_name = bool(item.pop(_AUTO_NAME, False))
    return Job(index=index, command=command, where=where, auto_name=auto_name, params=params,
               **job_kwargs(item, where))


class _Points:
    """Makes the jobs of one sweep point by point: the options are checked once, on the
    first point; each further point only fills in its command and name."""

    def __init__(self, sweep: _Sweep) -> None:
        self.sweep = sweep
        point = next(sweep.points())
        first = _job(0, sweep.item(point), sweep.where, self.params(point))
        self.kwargs = job_kwargs(sweep.options, sweep.where)
        self.after = first.after
        for key, values in zip(sweep.keys, sweep.values):    # what a point can bring in
            for value in values:
                check_text(str(value), f"value {value!r} of grid parameter {key!r}",
                           sweep.where)

    def params(self, point: Mapping[str, Any]) -> Tuple[Tuple[str, Any], ...]:
        return tuple((str(k), param_value(v)) for k, v in point.items())

    def jobs(self, first_index: int) -> Iterator[Job]:
        sweep, kwargs = self.sweep, self.kwargs
        auto_name = sweep.name is None
        for index, point in enumerate(sweep.points(), first_index):
            name = job_kwargs({"name": sweep._name(point)}, sweep.where)["name"]
            yield Job(index=index, command=_fill(sweep.cmd, point), where=sweep.where,
                      name=name, auto_name=auto_name, params=self.params(point), **kwargs)


def yaml_jobs(path: str) -> Iterator[Job]:
    """Jobs of a YAML file, in order. The file, every plain job, every sweep's options
    and the dependencies over the whole file are checked before this returns; a sweep's
    points are made as the stream is read."""
    return read_yaml(path, pure=False)


def read_yaml(path: str, pure: bool) -> Iterator[Job]:
    """``yaml_jobs``; ``pure``: with the pure-Python loader even where libyaml is."""
    entries = _entries(path, pure)
    plans: List[Union[Job, _Points]] = []
    index = 0
    for entry in entries:
        if isinstance(entry, _Sweep):
            plans.append(_Points(entry))
            index += entry.size
        else:
            plans.append(_job(index, dict(entry[0]), entry[1]))
            index += 1
    if not _dependencies_resolve(plans):     # name the job at fault as the full check does
        check_dependencies(list(_stream(plans)))
    return _stream(plans)


def _stream(plans: List[Union[Job, "_Points"]]) -> Iterator[Job]:
    index = 0
    for plan in plans:
        if isinstance(plan, Job):
            yield plan
            index += 1
        else:
            yield from plan.jobs(index)
            index += plan.sweep.size


def yaml_count(path: str) -> int:
    """How many jobs the file holds, without making a grid's points."""
    return sum(e.size if isinstance(e, _Sweep) else 1 for e in _entries(path, False))


def _dependencies_resolve(plans: List[Union[Job, _Points]]) -> bool:
    """True if every ``after`` names a job and there is no cycle, checked over entries
    (all points of a sweep share its ``after``) so grids are not expanded; False: run
    the job-by-job check to find the fault. Grid names are generated (not kept) only if
    some ``after`` names a sweep's point."""
    deps = [p.after for p in plans]
    wanted = {d for after in deps for d in after}
    if not wanted:
        return True
    given: Dict[str, List[int]] = {}
    for i, plan in enumerate(plans):
        if isinstance(plan, Job) and plan.name in wanted:
            given.setdefault(plan.name, []).append(i)
    for i, plan in enumerate(plans):
        if isinstance(plan, _Points) and any(plan.sweep.could_name(d) for d in wanted):
            for name in plan.sweep.names():
                if name in wanted and (not given.get(name) or given[name][-1] != i):
                    given.setdefault(name, []).append(i)
    if not wanted <= set(given):
        return False
    state: Dict[int, int] = {}      # 1 visiting, 2 done
    for start in range(len(plans)):
        if state.get(start):
            continue
        stack: List[Tuple[int, Iterator[int]]] = [
            (start, iter([e for d in deps[start] for e in given[d]]))]
        state[start] = 1
        while stack:
            node, edges = stack[-1]
            nxt = next(edges, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return False
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter([e for d in deps[nxt] for e in given[d]])))
    return True


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
