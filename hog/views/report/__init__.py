"""``hog report DIR``: one self-contained HTML page about a sweep.

It shows the summary (counts per status, wall time, GPU-slot utilisation following the
runners' slot changes, runners), a timeline of every attempt per slot (a Gantt chart
drawn on a canvas from packed columns, ``pack``: 100,000 jobs make about 2.3 MB),
GPU-slot use over time with the idle gaps (counted by the page from the attempts), a
histogram of durations, and each failed job with the end of its stderr. Everything is
inline (CSS, the script in ``report.js``, SVG): the page needs no network. The store is
opened read-only, so a report can be made while runners work; ``results.jsonl`` /
``.csv`` are rewritten too (unless the store has not changed since they were written).
"""
import os
import sys
import time
from typing import Optional

from hog.errors import UsageError
from hog.state.files import UnsafePath, replaced_atomically
from hog.state.jobdir import REPORT_HTML, RESULTS_JSONL, STATE_DIR, Layout
from hog.state.reading import SweepReader
from hog.state.resultdates import date_results, results_current
from hog.state.resultfiles import write_results
from hog.views.report.gather import Sweep, gather
from hog.views.report.html import build
from hog.views.report.timeline import Bar, Lane, Usage, lanes_and_bars, usage

__all__ = ["write_report", "gather", "build", "Sweep", "Lane", "Bar", "Usage",
           "lanes_and_bars", "usage"]


def write_report(directory: str, output: Optional[str] = None) -> str:
    """Write the report (and results.jsonl / .csv) for the sweep in ``directory``."""
    if not os.path.isdir(directory):
        raise UsageError(f"{directory}: no such directory")
    store = SweepReader(os.path.join(directory, STATE_DIR))
    try:
        prefix = store.meta("prefix") or "job_"
        layout = Layout(os.path.abspath(directory), prefix)
        read_from = time.time()
        stale = not results_current(layout)
        sweep = gather(store, layout, directory, read_from)
        page = build(sweep)
        try:
            if stale:           # unchanged since they were written: kept as they are
                version = store.data_version()
                write_results(store, layout)
                if store.data_version() != version:     # a runner wrote meanwhile
                    date_results(layout, read_from)
        except (OSError, UnsafePath) as e:
            print(f"hog: could not write {layout.sweep_file(RESULTS_JSONL)}: {e}",
                  file=sys.stderr)
    finally:
        store.close()
    path = output or layout.sweep_file(REPORT_HTML)
    try:
        with replaced_atomically(path) as f:
            f.write(page)
    except OSError as e:
        raise UsageError(f"{path}: cannot write the report ({e.strerror})") from None
    return path
