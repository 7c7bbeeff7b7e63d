"""hog: run a sweep of shell jobs over GPU slots, one job folder per job.

From Python (see ``hog.api`` and the README):

- ``hog.run(jobs, gpus="0,1", output_dir="out", ...)`` runs a sweep (jobs: command
  strings or mappings, a list or a generator; the command line's options as
  keywords) and returns a ``SweepResult`` (``exit_code``, per-job ``JobRecord``s);
- ``hog.results(output_dir)`` reads a sweep's jobs (``.to_records()`` for pandas);
- ``@hog.sweep(gpus=...)`` turns a function that returns or yields jobs into one
  that runs them;
- ``hog.HogError``: bad input or options (the command line's exit code 2).
"""

from hog.errors import HogError

__version__ = "0.1.0"

__all__ = ["run", "sweep", "results", "JobRecord", "Results", "SweepResult", "HogError",
           "__version__"]


_API = ("run", "sweep", "results", "JobRecord", "Results", "SweepResult")


def __getattr__(name: str):
    # the API is imported on first use, so the command line starts as fast as before
    if name in _API:
        from hog import api  # the API: loads the engine, kept off the command line's start
        # bound here once and for all: no submodule imported later (``hog.results`` was
        # one) can take the name from the function
        globals().update({n: getattr(api, n) for n in _API})
        return getattr(api, name)
    raise AttributeError(f"module 'hog' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
