"""The distribution installs one top-level import package, ``tf_serving_platform``, over the
layout's folders, so no other distribution's ``serving`` or ``models`` can clash with it; and
no code imports a folder by its bare name, which would work in a checkout only."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORT_PACKAGE = "tf_serving_platform"
FOLDERS = ("models", "export", "serving", "servectl", "loadtest")
"""The installed folders; benchmarks/ and tests/ run from a checkout only."""


def _bare_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and \
            node.module else []
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                  if n.split(".")[0] in FOLDERS]
    return found


def test_no_module_imports_a_folder_by_its_bare_name():
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    bare = [line for f in files for line in _bare_imports(ROOT / f)]
    assert not bare, "\n".join(bare)


def _source_tree(into: Path) -> Path:
    """The checkout's files (tracked, or new and not ignored) copied to ``into``: a build
    writes ``build/`` and ``*.egg-info`` beside its sources, and a test writes only under its
    temporary directory."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def test_the_wheel_installs_one_top_level_package_with_its_data(tmp_path):
    source = _source_tree(tmp_path / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(tmp_path / "dist"), str(source)], check=True,
                   timeout=600, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert archive.read(top_level).decode().split() == [IMPORT_PACKAGE]
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {IMPORT_PACKAGE}
    assert {n.split("/")[1] for n in names if n.startswith(f"{IMPORT_PACKAGE}/")} == set(FOLDERS)
    tracked = subprocess.run(["git", "ls-files", *FOLDERS], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    code = [f for f in tracked if f.endswith(".py")]
    missing = [f for f in [*code, "models/data/text_corpus.tsv",
                           "servectl/topology/nginx.conf.template"]
               if f"{IMPORT_PACKAGE}/{f}" not in names]
    assert not missing, f"not in the wheel (a package missing from pyproject.toml?): {missing}"
