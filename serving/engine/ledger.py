"""One budget for several processes: what each holds, in a small shared file.

With ``--frontend_processes N`` the request memory budget is the server's, not each process's:
a body that one process could take must not be refused because it landed on a front end
holding a Nth of the budget, and N front ends must not hold N budgets. Each process owns one
slot of the file (an int64 in a shared mapping) and changes only its own; a reservation sums
the slots and adds to its own under an exclusive ``flock`` (two system calls, about a
microsecond), so no two processes can both take the last bytes. A process that dies leaves its
slot behind: its restart (and the engine, when it sees it go) sets it back to zero.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

SLOT = struct.Struct("=q")


def ledger_path(folder: Path) -> Path:
    """Beside the model process's socket, in the engine's private folder."""
    return folder / "ledger"


class Ledger:
    """Slot ``slot`` of the ledger at ``path`` (``slots`` of them), open in this process."""

    def __init__(self, path: Path, slots: int, slot: int, created: bool = False):
        self.created = created
        """Whether this process made the file (the engine's: it reports the total)."""
        self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self._map = mmap.mmap(self._fd, slots * SLOT.size)
        self._totals = struct.Struct(f"={slots}q")
        self._offset = slot * SLOT.size
        self.clear(slot)

    @classmethod
    def create(cls, path: Path, slots: int, slot: int) -> Ledger:
        """A new ledger file, every slot zero (mode 0600, in the engine's private folder)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, slots * SLOT.size)
        finally:
            os.close(fd)
        return cls(path, slots, slot, created=True)

    def try_add(self, nbytes: int, limit: int) -> int | None:
        """Add ``nbytes`` to this process's slot unless every slot's sum would pass
        ``limit``; None when added, else the sum that refused it."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            total = self.total()
            if total + nbytes > limit:
                return total
            self._add(nbytes)
            return None
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def total(self) -> int:
        """What every process holds."""
        return sum(self._totals.unpack_from(self._map))

    def subtract(self, nbytes: int) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._add(-nbytes)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _add(self, nbytes: int) -> None:
        (held,) = SLOT.unpack_from(self._map, self._offset)
        SLOT.pack_into(self._map, self._offset, held + nbytes)

    def clear(self, slot: int) -> None:
        """Slot ``slot`` back to zero: its process is gone (or starts afresh)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            SLOT.pack_into(self._map, slot * SLOT.size, 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
