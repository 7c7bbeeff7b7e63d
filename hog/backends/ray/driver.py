"""The bridge process (``--backend ray``): joining the Ray cluster, or starting a local
Ray instance (``connect``), failing fast when nothing answers at its address
(``probe``), and the entry point the runner forks (``bridge_main``), which hands the
connection to the ``Bridge`` (``hog.backends.ray.bridge``) once Ray is ready, or says
in one line why it is not.
"""
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from hog.backends import wire
from hog.backends.ray.bridge import NODES_EVERY_S, Bridge
from hog.backends.ray.messages import ClusterReady, ClusterRefused
from hog.backends.ray.resources import alive_nodes
from hog.signals import SignalFlags
from hog.state.jobdir import Layout


@dataclass(frozen=True)
class RaySettings:
    address: Optional[str]                 # None: start a local Ray instance
    num_gpus: Optional[int] = None         # local instance: how many GPUs (None: Ray finds)
    visible: Optional[str] = None          # local instance: CUDA_VISIBLE_DEVICES for them
    log_path: str = ""                     # where Ray's own messages go


def connect(settings: RaySettings):
    """Import Ray and join the cluster (or start a local instance); returns ``ray``."""

    import ray  # ray: only in the bridge process, when it connects
    common: Dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING,
                  configure_logging=True)
    if settings.address is None:
        if settings.visible is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = settings.visible
        ray.init(address="local", num_gpus=settings.num_gpus, include_dashboard=False,
                 **common)
    else:
        probe(settings.address)
        ray.init(address=settings.address, **common)
    return ray


def probe(address: str, wait_s: float = 15.0) -> None:
    """Fail fast (Ray itself retries for minutes) when nothing listens at HOST:PORT."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return                          # "auto", or a form Ray resolves itself
    deadline = time.monotonic() + wait_s
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise ConnectionError(f"nothing answers at {address} "
                                      f"({e.strerror or e}); is the head node running?") \
                    from None
            time.sleep(1)


def _hint(log_path: str) -> str:
    """What Ray's log says that its exception does not."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, os.path.getsize(log_path) - 65536))
            tail = f.read()
    except OSError:
        return ""
    if b"InvalidAuthToken" in tail or b"Unauthenticated" in tail:
        return "; the cluster wants its authentication token: set RAY_AUTH_MODE=token and " \
               "the token (~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH) as on " \
               "its nodes"
    return ""


def bridge_main(conn, layout: Layout, grace: float, settings: RaySettings, close) -> None:
    """Entry point of the bridge process."""
    for other in close:      # the runner's end of our pipe: so EOF means "runner gone"
        other.close()
    flags = SignalFlags()    # terminal signals are the runner's business
    quiet = [signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2]
    flags.install(quiet)
    if settings.log_path:    # Ray's own messages go to a log, not over hog's display
        fd = os.open(settings.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    try:
        ray = connect(settings)
    except Exception as e:  # noqa: BLE001 - whatever Ray raises, the user gets one line
        text = (" ".join(str(e).split()) or type(e).__name__)[:600]     # one line
        wire.send(conn, ClusterRefused(text + _hint(settings.log_path)))
        return
    flags.install(quiet)     # ray.init installs its own SIGTERM handler
    bridge = Bridge(conn, layout, grace, ray)
    try:
        bridge.nodes = alive_nodes(ray)
        bridge.next_nodes = time.monotonic() + NODES_EVERY_S
        bridge.send(ClusterReady(bridge.nodes))
        bridge.serve()
    finally:
        try:
            ray.shutdown()
        except Exception:  # noqa: BLE001 - leaving anyway
            pass
