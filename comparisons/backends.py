"""The backends by name, loaded lazily; a missing library is a skip with its reason.

Every backend has the contract's ``loss_and_grads`` signature, so nothing downstream
special-cases one: the checker and the report iterate over this table.
"""

from __future__ import annotations

import importlib

from bptt_xval.model import BackendUnavailable

MODULES = {
    "manual": "manual.rnn",
    "torch": "reference.torch_autograd",
    "jax": "reference.jax_grad",
    "numeric": "reference.numeric",
}
REFERENCES = ("torch", "jax", "numeric")
# The module attribute that is None when the backend's library failed to import.
_LIBRARY = {"torch": "torch", "jax": "jax"}


def load(name: str):
    """The backend's ``loss_and_grads``; raises BackendUnavailable if its library is missing."""
    if name not in MODULES:
        raise ValueError(f"backend: expected one of {tuple(MODULES)}; got {name!r}")
    module = importlib.import_module(MODULES[name])
    if name in _LIBRARY and getattr(module, _LIBRARY[name]) is None:
        raise BackendUnavailable(f"{name}: {module._IMPORT_ERROR}")
    return module.loss_and_grads


def available(names=tuple(MODULES)) -> tuple[dict, dict]:
    """``({name: loss_and_grads}, {name: reason skipped})`` for ``names``."""
    found, skipped = {}, {}
    for name in names:
        try:
            found[name] = load(name)
        except BackendUnavailable as exc:
            skipped[name] = str(exc)
    return found, skipped


def library_version(name: str) -> str | None:
    try:
        return importlib.import_module(name).__version__
    except ImportError:
        return None
