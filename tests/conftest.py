"""The suite's fixtures; what they use is in harness.py.

Every test gets a unique ``HOG_TEST_TAG`` in the environment, so every process hog
starts (its producer and consumers, every job and everything a job starts) carries
it. After the test, ``/proc/*/environ`` is scanned for that tag: anything still
alive is a leak, fails the test, and is killed by PID.
"""
import os

import pytest

from .harness import TAG_VAR, open_session


@pytest.fixture(autouse=True)
def no_leaks(monkeypatch):
    """Give the test a unique tag; afterwards fail if any tagged process is alive."""
    session = open_session(monkeypatch)
    yield session
    problems = session.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def tag():
    return os.environ[TAG_VAR]


@pytest.fixture
def hq(no_leaks, tmp_path):
    """The test's session, working in tmp_path: hq.run, hq.start, hq.status, hq.tmp."""
    no_leaks.tmp = tmp_path
    return no_leaks


# ------------------------------------------------------------------ Ray
RAY_GROUP = "ray"


def pytest_configure(config):
    config.addinivalue_line("markers", "xdist_group(name): run these tests on one xdist worker")


def pytest_collection_modifyitems(items):
    """Every test that uses the Ray namespace (and so the session's one Ray cluster) runs on
    the same worker under ``pytest -n N --dist loadgroup``: one cluster, not one per worker."""
    for item in items:
        if "ray_netns" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(RAY_GROUP))
@pytest.fixture(scope="session")
def ray_netns():
    """A network namespace with only loopback up, for everything Ray (tests/ray_support.py)."""
    from .ray_support import make_netns, stop_netns, why_no_ray
    reason = why_no_ray()
    if reason:
        pytest.skip(reason)
    ns = make_netns()
    yield ns
    stop_netns(ns)


@pytest.fixture(scope="session")
def ray_cluster(ray_netns):
    """One Ray cluster for the whole session: a head with 4 fake GPUs on 127.0.0.1."""
    from .ray_support import Cluster
    cluster = Cluster(ray_netns)
    try:
        cluster.start_head()
        yield cluster
    finally:
        left = cluster.stop()
    assert not left, "Ray processes left running:\n  " + "\n  ".join(left)
