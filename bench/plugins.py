"""Plugins: the user's own modules that register recommenders, variants or loads, imported in every process.

A plugin is an importable module name (`my_team.recbench_ext`) or a path to a `.py` file. Its registrations
happen when it is imported:

    # my_ext.py
    from bench.recommenders import registry
    from bench.variants import registry as variants
    from bench.measure import load_registry

    registry.register(registry.Entry("my-model", "my_ext:MyModel", "classic", "what it is"))
    variants.register(variants.Variant("my-runtime", build_mine, precision="int8", devices=("cpu",)))
    load_registry.register(MyLoad())

A scenario names its plugins (`Scenario(plugins=("my_ext",))` or `("path/to/my_ext.py",)`), and
`recbench run --plugin MODULE` adds more. The driver imports them before it checks the scenario, and every
cell process (spawned locally or a Ray task) imports them again before its cell runs, since a fresh process
has none of the driver's registrations. A plugin that cannot be imported fails the run in one line, before
any work.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from bench.errors import ConfigError


def _module_name_for(path: Path) -> str:
    """A stable module name for a plugin file: the same in the driver and in every cell process."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return f"recbench_plugin_{path.stem.replace('-', '_')}_{digest}"


def _import_file(text: str) -> ModuleType:
    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"plugin file {text} does not exist; pass an existing .py file or an importable module name")
    name = _module_name_for(path)
    if name in sys.modules:
        return sys.modules[name]
    for module in list(sys.modules.values()):  # already imported under its package name: never twice
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == path:
            return module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"plugin file {text} cannot be imported as a Python module; pass a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered first, so that the plugin's own classes resolve by this name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import(text: str) -> ModuleType:
    if text.endswith(".py"):
        return _import_file(text)
    try:
        return importlib.import_module(text)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (text == exc.name or text.startswith(exc.name + ".")):
            raise ConfigError(
                f"plugin {text!r} is not importable (no module {exc.name!r}): install it, put its "
                "folder on PYTHONPATH, or pass the path to its .py file"
            ) from None
        raise


def load(plugins: Iterable[str]) -> list[ModuleType]:
    """Import each plugin once (again in each fresh process); a bad one is one ConfigError line."""
    modules = []
    for text in plugins:
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"plugin {text!r} must be a module name or a path to a .py file")
        try:
            modules.append(_import(text.strip()))
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken plugin is the user's to fix: say which and why
            first = (str(exc).strip().splitlines() or ["(no message)"])[0][:200]
            raise ConfigError(
                f"plugin {text!r} failed to import ({exc.__class__.__name__}: {first}); fix that module"
            ) from None
    return modules


def class_target(cls: type) -> str:
    """ "module:Class" naming `cls` so that another process can import it (for registry entries)."""
    return f"{cls.__module__}:{cls.__qualname__}"
