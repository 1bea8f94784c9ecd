"""How many CPUs this process may really use: its affinity, capped by its cgroup's CPU quota.

In a Kubernetes pod with ``limits.cpu: 2`` on a 64-core node, ``os.cpu_count()`` says 64 and
so does the affinity mask; sizing the front ends or the thread pools to that would thrash the
pod's two cores' worth of quota. The quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``)
is what the scheduler grants, rounded up.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def usable_cpus(cgroup: Path = CGROUP) -> int:
    """The CPUs of the affinity mask, at most the cgroup's quota (rounded up); at least 1."""
    count = len(os.sched_getaffinity(0))
    quota = cgroup_quota(cgroup)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def cgroup_quota(cgroup: Path = CGROUP) -> float | None:
    """The CPU quota in CPUs (quota / period), or None where there is none to read."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        pass
    try:
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError, ZeroDivisionError):
        return None
