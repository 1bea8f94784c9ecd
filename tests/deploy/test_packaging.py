"""The distribution installs one top-level import package, ``tf_serving_platform``, over the
layout's folders, so no other distribution's ``serving`` or ``models`` can clash with it; no
code imports a folder by its bare name, which would work in a checkout only; and no package
imports one above it (the layers of the README's architecture section)."""

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


LAYERS = (("tests",), ("benchmarks",), ("servectl",), ("loadtest", "export"),
          ("models", "serving.client", "serving.engine"), ("serving.codec",), ("serving",))
"""Top first; ``serving`` is its own modules (errors, versions, tables, ...)."""
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
SERVING_PACKAGES = ("client", "engine", "codec")


def _python_files() -> list[str]:
    return subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                           "*.py"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every absolute import, those inside functions too; for
    ``from a import b``, ``a.b`` (``b`` may be a module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _unit(dotted: str) -> str | None:
    """The layer unit a module belongs to (``serving.engine``, ``loadtest``, ...), or None for
    a module outside the project."""
    parts = dotted.removeprefix(f"{IMPORT_PACKAGE}.").split(".")
    if parts[0] == "serving" and len(parts) > 1 and parts[1] in SERVING_PACKAGES:
        return f"serving.{parts[1]}"
    return parts[0] if parts[0] in RANK else None


def test_no_module_imports_a_folder_by_its_bare_name():
    bare = [f"{f}:{line}: {name}" for f in _python_files() for line, name in _imports(ROOT / f)
            if name.split(".")[0] in FOLDERS]
    assert not bare, "\n".join(bare)


def test_no_package_imports_one_above_it_or_beside_it():
    upward = []
    for f in _python_files():
        here = _unit(f.removesuffix(".py").replace("/", "."))
        for line, name in _imports(ROOT / f):
            there = _unit(name)
            if there is not None and there != here and RANK[there] <= RANK[here]:
                upward.append(f"{f}:{line}: {here} imports {there} ({name})")
    assert not upward, "\n".join(upward)


def test_the_layers_name_every_package():
    assert {_unit(f.removesuffix(".py").replace("/", ".")) for f in _python_files()} == set(RANK)


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
