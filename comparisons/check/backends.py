"""The backends by name, loaded lazily; a missing library is a skip with its reason.

Every backend has the contract's ``loss_and_grads`` signature, so nothing downstream
special-cases one: the checker and the report iterate over this table.
"""

from __future__ import annotations

import functools
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


DEVICES = ("cpu", "cuda")
# the references whose library computes on a GPU; finite differences stay on the CPU
_ON_DEVICE = {"torch": "reference.torch_autograd", "jax": "reference.jax_grad"}


def on_device(refs: dict, device: str) -> dict:
    """``refs`` computing on ``device``: "cpu" as they are, "cuda" with torch and JAX moved
    there (BackendUnavailable, naming what is missing, when either cannot)."""
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {DEVICES}; got {device!r}")
    if device == "cpu":
        return refs
    out = dict(refs)
    for name in set(refs) & set(_ON_DEVICE):
        importlib.import_module(_ON_DEVICE[name]).device_for(device)     # raises when it cannot
        out[name] = functools.partial(refs[name], device=device)
    return out


def batched(name: str, ref):
    """The many-cases form (``launch_batch``: start now, collect later) of reference ``ref`` (a backend's own
    ``loss_and_grads``, or it bound to a device by :func:`on_device`), or None when ``ref``
    is anything else (a test's stand-in, finite differences): then it runs case by case."""
    func, keywords = (ref.func, ref.keywords) if isinstance(ref, functools.partial) else (ref, {})
    if name not in _ON_DEVICE:
        return None
    module = importlib.import_module(_ON_DEVICE[name])
    if func is not getattr(module, "loss_and_grads", None):
        return None
    return functools.partial(module.launch_batch, **keywords)
