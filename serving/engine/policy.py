"""Version policy: which versions a model aspires to serve, and in which order to get there.

Both are pure functions over small tables, so they are tested without a server.

* :func:`aspired_versions` applies ``model_version_policy`` to the versions found on disk
  (``sources/storage_path/file_system_storage_path_source.cc``).
* :func:`next_action` is TensorFlow Serving's ``AvailabilityPreservingPolicy``
  (``core/availability_preserving_policy.cc``): unload an un-aspired version only when that
  cannot leave the model with nothing to serve, otherwise load the highest new aspired version.
  The net effect of a version swap: the new version loads first, the old one unloads after.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from tensorflow_serving.config import file_system_storage_path_source_pb2

VersionPolicy = file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.\
    ServableVersionPolicy


class State(IntEnum):
    """Version states, with the numbers of ``ModelVersionStatus.State`` (get_model_status.proto)."""

    UNKNOWN = 0
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass(frozen=True)
class VersionView:
    """What the policy needs to know about one version."""

    version: int
    aspired: bool
    state: State
    failed: bool = False


@dataclass(frozen=True)
class Action:
    kind: Literal["load", "unload"]
    version: int


def aspired_versions(policy: VersionPolicy, on_disk: Iterable[int]) -> set[int]:
    """The versions ``policy`` wants served, out of those present on disk.

    ``latest`` (the default, also when no policy is set) keeps the N highest (N = 0 counts as 1);
    ``all`` keeps every version; ``specific`` keeps the listed versions that exist.
    """
    present = sorted(set(on_disk))
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return set(present)
    if kind == "specific":
        return set(present) & set(policy.specific.versions)
    count = max(policy.latest.num_versions, 1) if kind == "latest" else 1
    return set(present[-count:])


def next_action(versions: Sequence[VersionView]) -> Action | None:
    """The next load or unload for one model, or None when it is where it aspires to be."""
    ready_unaspired = sorted(v.version for v in versions
                             if not v.aspired and v.state == State.AVAILABLE)
    any_aspired = any(v.aspired for v in versions)
    aspired_ready = any(v.aspired and v.state == State.AVAILABLE for v in versions)
    if ready_unaspired and (not any_aspired or aspired_ready or len(ready_unaspired) > 1):
        return Action("unload", ready_unaspired[0])
    if any(v.state in (State.LOADING, State.UNLOADING) for v in versions):
        return None
    to_load = [v.version for v in versions
               if v.aspired and v.state in (State.UNKNOWN, State.START) and not v.failed]
    return Action("load", max(to_load)) if to_load else None
