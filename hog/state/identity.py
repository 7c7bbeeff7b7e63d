"""Which job of the store a job read from the sweep's source is: its identity key.

A job is identified by its ``name`` when it has one, otherwise by its definition
(what it runs), together with how many identical jobs came before it in the same
reading of the source. The key is what the store's ``jobs.ident`` column holds:

- ``n:K:NAME`` for a named job, ``K`` the number of earlier jobs of that name in
  the source (two jobs of one name are two jobs, as they always were);
- ``d:K:DIGEST`` for an unnamed one, ``K`` the number of earlier unnamed jobs with
  the same digest (the 2nd ``echo a`` is another job than the 1st).

The digest is a hash of the job's definition: its command and the options that
change what the process does, ``env``, ``cwd`` and ``gpus`` (how many GPUs it
sees). The options that only say where, when, how long or how often it may run
(``priority``, ``retries``, ``timeout``, ``after``, ``gpu_ids``, ``resources``
and ``memory``) are not part of it: changing them in the source never runs a
finished job again. A named job keeps its identity when its definition changes;
the store compares digests to run it again as a new attempt. The names hog makes up
for the points of an unnamed YAML sweep (``sweep<entry>-lr=0.1``, which change when
an entry is inserted before it) are no identity: those jobs count as unnamed.

Pure: no SQL, no I/O. ``spec_digest`` is registered as an SQL function so that the
schema migration computes the same keys for rows written by an older hog.
"""
import json
import re
from typing import Any, Dict, Iterable, Optional, Tuple

from hog.model import Job

IDENTITY_OPTIONS = ("env", "cwd", "gpus")   # with the command: the definition hashed
DIGEST_CHARS = 24
AUTO_SWEEP_NAME = re.compile(r"sweep\d+-[^=]+=")     # what sources/yaml.py names them


def definition_digest(command: str, env: Iterable[Tuple[str, str]], cwd: Optional[str],
                      gpus: Any) -> str:
    """A stable hash of a job's definition (the same on every machine and version)."""
    return _sha256()(canonical_text(command, env, cwd, gpus).encode("ascii")
                     ).hexdigest()[:DIGEST_CHARS]


def canonical_text(command: str, env: Iterable[Tuple[str, str]], cwd: Optional[str],
                   gpus: Any) -> str:
    """The definition as the digest reads it: compact, sorted, ASCII JSON. A job with
    no ``env`` and no ``cwd`` on a whole number of GPUs (most jobs: every job of a
    sweep is digested as it is read) has its text made directly, the same bytes."""
    count = float(gpus)
    whole = count.is_integer()
    if whole and cwd is None and not env:
        return f'{{"command":{_json_string(command)},"cwd":null,"env":[],"gpus":{int(count)}}}'
    canonical = {"command": command, "env": sorted(dict(env).items()), "cwd": cwd,
                 "gpus": int(count) if whole else count}
    return json.dumps(canonical, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


_json_string = json.encoder.encode_basestring_ascii     # (what json.dumps quotes with)


def builtin_hash(name: str, modules: Tuple[str, ...]) -> Any:
    """The hash function ``name`` from the first of ``modules`` that has it: Python's
    own modules (``_sha2``, ``_blake2``) before ``hashlib``, which loads OpenSSL first
    (8 ms on the way to the first job; the digests are the same)."""
    found = _HASHES.get(name)
    if found is None:
        import importlib
        for module in modules:
            try:
                found = _HASHES[name] = getattr(importlib.import_module(module), name)
                break
            except (ImportError, AttributeError):
                continue
    return found


_HASHES: Dict[str, Any] = {}


def _sha256() -> Any:
    """SHA-256 (``_sha2``; ``_sha256`` before 3.12; else ``hashlib``'s)."""
    return builtin_hash("sha256", ("_sha2", "_sha256", "hashlib"))


def job_digest(job: Job) -> str:
    return definition_digest(job.command, job.env, job.cwd, job.gpus)


def spec_digest(command: str, spec: str) -> str:
    """The digest of a stored row: its ``command`` and ``spec`` column (JSON of the
    options that differ from the defaults, as ``rows.job_spec`` writes it)."""
    options = json.loads(spec or "{}")
    return definition_digest(command, [tuple(p) for p in options.get("env", ())],
                             options.get("cwd"), options.get("gpus", 1))


def ident_key(name: Optional[str], digest: str, earlier: int) -> str:
    return f"n:{earlier}:{name}" if name else f"d:{earlier}:{digest}"


def given_name(job: Job) -> Optional[str]:
    """The name that identifies the job: one the user gave (not one hog made up)."""
    return None if job.auto_name else job.name or None


def stored_given_name(name: Optional[str], source: Optional[str]) -> Optional[str]:
    """``given_name`` for a row stored without ``auto_name`` (an older schema's, or one
    restored from its folder): an unnamed YAML sweep's points are named
    ``sweep<entry>-<key>=<value>...`` by hog."""
    if not name or ((source or "").startswith("yaml:") and AUTO_SWEEP_NAME.match(name)):
        return None
    return name


class Occurrences:
    """The keys of one reading of a source, in order: counts the jobs seen so far by
    name (named jobs) or by digest (unnamed ones)."""

    def __init__(self) -> None:
        self._seen: Dict[str, int] = {}

    def key(self, job: Job, digest: str) -> str:
        name = given_name(job)
        counted = f"n{name}" if name else f"d{digest}"
        earlier = self._seen.get(counted, 0)
        self._seen[counted] = earlier + 1
        return ident_key(name, digest, earlier)
