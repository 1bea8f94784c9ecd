"""The version policy and the availability-preserving rollout rule, as pure functions."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from tf_serving_platform.serving.engine.policy import (
    Action,
    State,
    VersionPolicy,
    VersionView,
    aspired_versions,
    next_action,
)

A, L, U, S, E = State.AVAILABLE, State.LOADING, State.UNLOADING, State.START, State.END


@pytest.mark.parametrize(("policy", "on_disk", "wanted"), [
    ("", [1, 2, 3], {3}),
    ("latest { num_versions: 2 }", [1, 2, 3], {2, 3}),
    ("latest { num_versions: 0 }", [1, 2, 3], {3}),
    ("latest { num_versions: 5 }", [4, 9], {4, 9}),
    ("all {}", [1, 5, 7], {1, 5, 7}),
    ("specific { versions: 1 versions: 4 }", [1, 2, 3], {1}),
    ("specific { versions: 8 }", [1, 2], set()),
    ("", [], set()),
])
def test_aspired_versions(policy, on_disk, wanted):
    assert aspired_versions(text_format.Parse(policy, VersionPolicy()), on_disk) == wanted


def views(*rows):
    return [VersionView(v, aspired, state, failed) for v, aspired, state, failed in rows]


@pytest.mark.parametrize(("rows", "action"), [
    # New version aspired, old still serving: load the new one first.
    ([(1, False, A, False), (2, True, S, False)], Action("load", 2)),
    # New one loaded: now the old one may go.
    ([(1, False, A, False), (2, True, A, False)], Action("unload", 1)),
    # New one still loading: keep the old one.
    ([(1, False, A, False), (2, True, L, False)], None),
    # New one failed to load: the old one keeps serving, nothing is retried.
    ([(1, False, A, False), (2, True, E, True)], None),
    # Nothing aspired any more (model removed): unload.
    ([(1, False, A, False)], Action("unload", 1)),
    # Two un-aspired versions serving: one of them can go right away (the lowest).
    ([(1, False, A, False), (2, False, A, False), (3, True, S, False)], Action("unload", 1)),
    # Several new versions: the highest loads first.
    ([(1, True, S, False), (2, True, S, False)], Action("load", 2)),
    # One thing at a time: wait for an unload in progress.
    ([(1, False, U, False), (2, True, S, False)], None),
    # Steady state.
    ([(2, True, A, False)], None),
])
def test_next_action(rows, action):
    assert next_action(views(*rows)) == action
