"""Load shapes as a list of stages, and the clock that plays them.

Pure code (no Locust import), so it is unit-tested with small tables; the locustfile's
``LoadTestShape`` only forwards Locust's ``tick()`` to a ``StageClock``.

A stage's clock starts when the runner reports that its user count was reached, not when the
stage was asked for: ramp-up (and a worker that is still starting) is then never measured as
part of the level. The clock records each level's measured period (``Level``, wall-clock time)
in ``schedule.json`` beside the raw samples, so the report slices samples by level exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SHAPES = ("constant", "steps", "spike")
SCHEDULE_FILE = "schedule.json"
REACH_TIMEOUT_S = 30.0
"""Start a stage's clock anyway if its user count is not reached within this time."""


@dataclass(frozen=True)
class Stage:
    """Hold ``users`` users for ``seconds``, changing towards them at ``spawn_rate`` users/s."""

    users: int
    seconds: float
    spawn_rate: float


def plan(shape: str, users: int, spawn_rate: float, seconds: float,
         step_users: int | None = None, levels: tuple[int, ...] = ()) -> list[Stage]:
    """The stages of a shape.

    Args:
        shape: ``constant`` (``users`` for ``seconds``); ``steps`` (``step_users``,
            2 x ``step_users``, ... up to ``users``, or the explicit ``levels``, each for
            ``seconds``); ``spike`` (``step_users`` for ``seconds``, then ``users`` for
            ``seconds``, arriving all at once, then ``step_users`` again).
        users: the peak number of users.
        spawn_rate: users started (or stopped) per second between stages.
        seconds: the measured duration of each stage.
        step_users: the step of ``steps`` and the base load of ``spike``; a quarter of
            ``users`` when not given.
        levels: explicit user counts for ``steps`` (a sweep), overriding the step size.

    Raises:
        ValueError: an unknown shape or non-positive numbers.
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    if users < 1 or seconds <= 0 or spawn_rate <= 0 or any(n < 1 for n in levels):
        raise ValueError(f"users, levels, seconds and spawn rate must be positive; got "
                         f"users={users}, levels={levels}, seconds={seconds}, "
                         f"spawn_rate={spawn_rate}")
    step = max(1, step_users or users // 4)
    if shape == "constant":
        return [Stage(users, seconds, spawn_rate)]
    if shape == "steps":
        counts = list(levels) or [*range(step, users, step), users]
        return [Stage(n, seconds, spawn_rate) for n in counts]
    base = min(step, users)
    return [Stage(base, seconds, spawn_rate), Stage(users, seconds, float(users)),
            Stage(base, seconds, float(users))]


def users_text(count: int) -> str:
    """``1 user``, ``4 users``: how levels are named in verdicts and plots."""
    return f"{count} user{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Level:
    """The measured period of one stage: ``users`` held from ``start`` to ``end`` (Unix time)."""

    users: int
    start: float
    end: float


class StageClock:
    """Plays a list of stages: call ``tick`` about once a second with the current user count."""

    def __init__(self, stages: list[Stage], schedule_path: Path | None = None,
                 clock=time.time) -> None:
        self.stages = stages
        self.levels: list[Level] = []
        self._path = schedule_path
        self._clock = clock
        self._index = 0
        self._asked_at: float | None = None
        self._started_at: float | None = None

    def tick(self, current_users: int) -> tuple[int, float] | None:
        """``(users, spawn_rate)`` to run now, or None when the last stage is over."""
        now = self._clock()
        if self._index >= len(self.stages):
            return None
        stage = self.stages[self._index]
        if self._asked_at is None:
            self._asked_at = now
        if self._started_at is None and (current_users == stage.users
                                         or now - self._asked_at > REACH_TIMEOUT_S):
            self._started_at = now
        if self._started_at is not None and now - self._started_at >= stage.seconds:
            self.levels.append(Level(stage.users, self._started_at, now))
            self._write()
            self._index += 1
            self._asked_at = self._started_at = None
            return self.tick(current_users)
        return stage.users, stage.spawn_rate

    def _write(self) -> None:
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._path.write_text(json.dumps([asdict(level) for level in self.levels]))


def read_levels(directory: Path) -> list[Level]:
    """The levels a ``StageClock`` recorded in ``directory`` (empty if none finished)."""
    path = Path(directory) / SCHEDULE_FILE
    if not path.exists():
        return []
    return [Level(**item) for item in json.loads(path.read_text())]
