"""The command-line scripts as modules, so that tests call their ``main(argv)`` in-process."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def load_script(name: str):
    """Import ``scripts/<name>.py`` (the scripts are not a package) once; every test module shares that module, since
    dataclasses and tyro look it up by its name in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
