"""Backends: where dispatched jobs run, and how each attempt is recorded.

``factory.make_backend`` builds the pair the runner works with: a ``Backend`` that runs jobs
and an ``Admission`` that decides which may start (``hog.backends.base``). With
``--backend local`` (the default) those are one consumer process per slot and the
local scheduler over the configured GPU slots; with ``--backend ray``, the Ray bridge
and the admission that hands jobs over to Ray.
"""
