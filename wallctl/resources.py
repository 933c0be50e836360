"""Where the built-in layout templates and the demo configuration are found.

They live at the top of the repository (``layouts/``, ``config/``) where integrators look
for them. A wheel ships them as the data packages ``wallctl._layouts`` and
``wallctl._config``; an editable install (``make run``) reads them from the source tree,
because setuptools' editable finder does not follow a package-dir mapped outside the
package.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_SOURCE_TREE = Path(__file__).resolve().parent.parent


def _builtin_dir(folder: str, package: str) -> Path:
    in_tree = _SOURCE_TREE / folder
    if (_SOURCE_TREE / "pyproject.toml").is_file() and in_tree.is_dir():
        return in_tree
    return Path(str(resources.files(package)))


def builtin_layouts_dir() -> Path:
    return _builtin_dir("layouts", "wallctl._layouts")


def demo_config_path() -> Path:
    return _builtin_dir("config", "wallctl._config") / "demo.toml"
