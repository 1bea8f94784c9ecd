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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from export.errors import ExportError, VersionExistsError
from serving.versions import parse_version

STAGING_PREFIX = ".staging-"



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
    """A fresh hidden directory next to the versions; removed if the export fails."""
    ensure_writable(model_dir)
    path = model_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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
