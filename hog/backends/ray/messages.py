"""The messages only a Ray run sends (``hog.messages`` has the rest): to the Ray
bridge, ``ForSlot`` (a message for one of the slots it serves); from it, ``ClusterReady``
or ``ClusterRefused`` once, then ``ClusterNodes`` whenever the cluster's live nodes
change. Frozen dataclasses, pickled as they are."""
from dataclasses import dataclass
from typing import Dict, Sequence, Union

from hog.messages import Dispatch, Signal, Stop


@dataclass(frozen=True)
class ForSlot:
    """To the Ray bridge, which serves every slot: ``message`` is for ``slot``."""

    slot: int
    message: Union[Dispatch, Stop, Signal]


@dataclass(frozen=True)
class ClusterReady:
    """The Ray bridge joined the cluster; these are its live nodes' resources."""

    nodes: Sequence[Dict[str, float]]


@dataclass(frozen=True)
class ClusterRefused:
    """The Ray bridge could not join the cluster (one line, for the user)."""

    text: str


@dataclass(frozen=True)
class ClusterNodes:
    """The cluster's live nodes changed."""

    nodes: Sequence[Dict[str, float]]
