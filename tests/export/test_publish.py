"""Atomic, immutable publishing: readers never see a partial version; versions never change."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from pathlib import Path

import pytest

from tf_serving_platform.export import pipeline, publish
from tf_serving_platform.export.errors import VersionExistsError
from tf_serving_platform.servectl import command

REQUIRED = ("saved_model.pb", "variables/variables.index",
            "assets.extra/tf_serving_warmup_requests", "assets.extra/export_metadata.json")


def _complete(version_dir: Path) -> bool:
    return all((version_dir / f).exists() for f in REQUIRED)


def test_a_polling_reader_never_sees_a_partial_version(tmp_path):
    """Export in a child process while this thread polls the model directory non-stop."""
    model_dir = tmp_path / "digits_mlp"
    seen, partial, stop = set(), [], threading.Event()

    def poll():
        while not stop.is_set():
            for version in publish.list_versions(model_dir):
                seen.add(version)
                if not _complete(model_dir / str(version)):
                    partial.append(version)
    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for _ in range(2):
            subprocess.run(command("export", "digits_mlp", "--base-path", str(tmp_path),
                                   "--quiet"), check=True,
                           capture_output=True, timeout=300)
    finally:
        stop.set()
        reader.join()
    assert seen == {1, 2}
    assert partial == []


def test_an_existing_version_is_never_overwritten(zoo_source, tmp_path):
    source = zoo_source("digits_mlp")
    first = pipeline.export_model(source, tmp_path, version=3, progress=False)
    digest = hashlib.sha256((first.path / "saved_model.pb").read_bytes()).hexdigest()
    files = sorted(p.relative_to(first.path) for p in first.path.rglob("*"))
    with pytest.raises(VersionExistsError, match="version 3 of digits_mlp already exists"):
        pipeline.export_model(source, tmp_path, version=3, progress=False)
    assert hashlib.sha256((first.path / "saved_model.pb").read_bytes()).hexdigest() == digest
    assert sorted(p.relative_to(first.path) for p in first.path.rglob("*")) == files
    assert [p.name for p in (tmp_path / "digits_mlp").iterdir()] == ["3"]


def test_concurrent_publishers_of_one_version_have_exactly_one_winner(tmp_path):
    model_dir = tmp_path / "m"
    staged = []
    for i in range(8):
        with publish.staging_dir(model_dir) as path:
            pass
        path.mkdir()
        (path / "who").write_text(str(i))
        staged.append(path)
    barrier, outcomes = threading.Barrier(len(staged)), []

    def race(path):
        barrier.wait()
        try:
            publish.publish(path, model_dir, 1)
            outcomes.append("won")
        except VersionExistsError:
            outcomes.append("lost")
    threads = [threading.Thread(target=race, args=(p,)) for p in staged]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    winner = (model_dir / "1" / "who").read_text()
    assert not (model_dir / "1" / "1").exists(), f"publisher {winner}'s version was nested"


def test_versions_are_numeric_children_only(tmp_path):
    for name in ("1", "10", "2", ".staging-abc", "latest", "3.tmp"):
        (tmp_path / name).mkdir()
    (tmp_path / "4").write_text("a file, not a version")
    assert publish.list_versions(tmp_path) == [1, 2, 10]
    assert publish.next_version(tmp_path) == 11
