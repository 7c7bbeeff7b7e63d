"""Job sources: each turns a file, a generator or a watched directory into a stream of
``hog.model.Job``s, each with the file:line it came from.

``SourceSpec`` names a source; ``open_source`` opens it as that stream (text job files
in ``text``, yielder files and in-memory iterables in ``yielder``, YAML sweeps in
``yaml``, a watched ``to_run/`` directory in ``watch``; per-job options are checked in
``joboptions``; standard input, ``--job-file -``, is the text source ``stdin``, never
counted ahead nor read twice); ``count_jobs`` counts a file source's jobs for the ETA. The producer
process (``producer``) runs the stream into the runner's bounded queue.
"""
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from hog.model import Job
from hog.sources.text import STDIN, text_jobs, text_lines
from hog.sources.watch import watch_jobs


@dataclass(frozen=True)
class SourceSpec:
    kind: str   # "text" | "stdin" | "yaml" | "yielder" | "watch" | "python"
    path: str   # for "python": a label naming the sweep (hog.run in Python)
    exit_when_empty: bool = True   # watch: stop once to_run/ is empty
    items: Any = field(default=None, compare=False, repr=False)   # "python": the jobs


def open_source(spec: SourceSpec) -> Iterator[Job]:
    if spec.kind == "text":
        return text_jobs(spec.path)
    if spec.kind == "stdin":
        return text_jobs(STDIN)
    if spec.kind == "yielder":
        from hog.sources.yielder import yielder_jobs  # (and traceback): only for yielders
        return yielder_jobs(spec.path)
    if spec.kind == "yaml":
        from hog.sources.yaml import yaml_jobs  # PyYAML loads only for YAML sources
        return yaml_jobs(spec.path)
    if spec.kind == "python":     # handed over by fork, never pickled
        from hog.sources.yielder import iterable_jobs
        return iterable_jobs(spec.items, spec.path)
    if spec.kind == "watch":
        return watch_jobs(spec.path, spec.exit_when_empty)
    raise ValueError(spec.kind)


def count_jobs(spec: SourceSpec) -> Optional[int]:
    """How many jobs a file source holds (None for sources that are not files, or when
    the file cannot be read to the end: the stream reports that error itself)."""
    try:
        if not stat.S_ISREG(os.stat(spec.path).st_mode):   # a pipe can be read only once
            return None
        if spec.kind == "text":
            return sum(1 for _ in text_lines(spec.path))
        if spec.kind == "yaml":
            from hog.sources.yaml import yaml_count  # PyYAML loads only for YAML sources
            return yaml_count(spec.path)
    except Exception:  # noqa: BLE001 - counting is a nicety; reading reports errors
        return None
    return None
