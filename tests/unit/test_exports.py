"""The public API: everything in devenv.__all__ resolves, and every public class and function is exported."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import devenv

PUBLIC_MODULES = ["devenv.errors", "devenv.tools", "devenv.cache", "devenv.client", "devenv.content", "devenv.context"]


def public_members(module_name: str) -> list[str]:
    """The classes and functions a module lists in its ``__all__``."""
    module = importlib.import_module(module_name)
    return [
        name
        for name in module.__all__
        if inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name))
    ]


@pytest.mark.parametrize("name", devenv.__all__)
def test_every_name_in_all_resolves(name):
    assert getattr(devenv, name) is not None


def test_all_is_sorted_and_unique():
    assert devenv.__all__ == sorted(set(devenv.__all__))
    assert "__version__" in devenv.__all__


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_member_of_the_module_is_exported(module_name):
    module = importlib.import_module(module_name)
    members = public_members(module_name)
    assert members, f"{module_name}.__all__ lists no classes or functions"
    for name in members:
        assert name in devenv.__all__, f"{module_name}.{name} is public but not exported from devenv"
        assert getattr(devenv, name) is getattr(module, name)


@pytest.mark.parametrize("name", [n for n in devenv.__all__ if n != "__version__"])
def test_each_export_is_defined_in_a_devenv_module(name):
    value = getattr(devenv, name)
    home = value.__module__
    assert home.startswith("devenv.")
    assert getattr(sys.modules[home], name) is value


def test_dir_lists_the_exports():
    listed = dir(devenv)
    for name in devenv.__all__:
        assert name in listed
    for module_name in PUBLIC_MODULES:
        for name in public_members(module_name):
            assert name in listed


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="module 'devenv' has no attribute 'NoSuchThing'"):
        devenv.NoSuchThing  # noqa: B018
    assert not hasattr(devenv, "no_such_thing")
    with pytest.raises(ImportError):
        exec("from devenv import NoSuchThing")


def test_version_matches_the_distribution():
    from importlib.metadata import version

    assert devenv.__version__ == version("devenv")


def test_exceptions_share_one_root():
    for name in public_members("devenv.errors"):
        assert issubclass(getattr(devenv, name), devenv.DevenvError)


def test_importing_devenv_loads_no_heavy_module():
    """Exports resolve lazily: `import devenv` alone must not import pydantic, httpx or FastAPI."""
    code = (
        "import sys, devenv\n"
        "heavy = ('pydantic', 'httpx', 'fastapi', 'starlette', 'uvicorn', 'redis', 'prometheus_client')\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
