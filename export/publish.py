"""Versioned, atomic publishing of a SavedModel under ``<base_path>/<model>/<version>/``.

A version is written into a hidden staging directory *inside the model directory* (same
filesystem, and a name that is not an integer, so TensorFlow Serving's file-system source never
treats it as a version) and then renamed into place with one ``rename(2)``: a server polling the
model directory sees either nothing or the complete version. An existing version is never
replaced: ``rename`` onto a non-empty directory fails, which also settles a race between two
concurrent exporters.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tf_serving_platform.export.errors import ExportError, VersionExistsError
from tf_serving_platform.serving.versions import parse_version

STAGING_PREFIX = ".staging-"
STALE_AFTER_S = 24 * 3600
"""A staging directory of another host (or of an older naming) this old is taken as left by an
exporter that died: no export takes a day."""


def refuse_existing_version(model_dir: Path, version: int | None) -> None:
    """Versions are immutable: refuse to export into one that exists (before any work)."""
    if version is not None and (model_dir / str(version)).exists():
        raise VersionExistsError(f"version {version} of {model_dir.name} already exists at "
                                 f"{model_dir / str(version)}; versions are immutable")


def list_versions(model_dir: Path) -> list[int]:
    """Published versions: direct children whose name is a version (serving/versions.py)."""
    if not model_dir.is_dir():
        return []
    found = ((parse_version(p.name), p) for p in model_dir.iterdir())
    return sorted(v for v, p in found if v is not None and p.is_dir())


def next_version(model_dir: Path) -> int:
    """One more than the highest published version, or 1 for a new model."""
    return max(list_versions(model_dir), default=0) + 1


def ensure_writable(model_dir: Path) -> None:
    """Create ``model_dir`` or fail with one clear line if it cannot be written."""
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create {model_dir}: {e.strerror}") from None
    if not os.access(model_dir, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write to {model_dir}: permission denied")


@contextmanager
def staging_dir(model_dir: Path) -> Iterator[Path]:
    """A fresh hidden directory next to the versions, named after the exporter (host and pid)
    so that a later export can tell it from a live one; removed if the export fails. Staging
    directories that exporters killed mid-way left (SIGKILL, a lost node) are removed first."""
    ensure_writable(model_dir)
    remove_stale_staging(model_dir)
    path = model_dir / f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Staging:
    path: Path
    why_stale: str | None
    """None while its exporter may still be writing it."""


def staging_dirs(model_dir: Path) -> list[Staging]:
    """The staging directories under ``model_dir``, each judged: stale when its exporter (this
    host) is gone, or when it is older than :data:`STALE_AFTER_S` (another host's, or unnamed)."""
    found = []
    for path in sorted(model_dir.glob(f"{STAGING_PREFIX}*")):
        host, _, rest = path.name[len(STAGING_PREFIX):].rpartition("-")[0].rpartition("-")
        pid = int(rest) if rest.isdigit() else None
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:  # published or removed meanwhile
            continue
        if host == socket.gethostname() and pid is not None:
            why = None if _alive(pid) else f"its exporter (pid {pid}) is gone"
        else:
            why = f"untouched for {age / 3600:.0f} h" if age > STALE_AFTER_S else None
        found.append(Staging(path, why))
    return found


def remove_stale_staging(model_dir: Path) -> None:
    for staging in staging_dirs(model_dir):
        if staging.why_stale:
            shutil.rmtree(staging.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def publish(staged: Path, model_dir: Path, version: int) -> Path:
    """Atomically rename ``staged`` to ``model_dir/<version>``.

    Raises:
        VersionExistsError: the version is already published (it is left untouched).
    """
    target = model_dir / str(version)
    if target.exists():
        raise VersionExistsError(f"version {version} of {model_dir.name} already exists at "
                                 f"{target}; versions are immutable, pick another --version")
    try:
        os.rename(staged, target)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise VersionExistsError(f"version {version} of {model_dir.name} was published "
                                     f"concurrently at {target}") from None
        raise ExportError(f"cannot publish {target}: {e.strerror}") from None
    return target
