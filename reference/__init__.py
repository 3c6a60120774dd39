"""Reference gradients for the contract's model, none of them derived by hand.

- :mod:`reference.torch_autograd`: PyTorch autograd.
- :mod:`reference.jax_grad`: ``jax.value_and_grad`` over ``lax.scan``, jitted, float64.
- :mod:`reference.numeric`: float64 complex-step / central finite differences.

Never imports ``manual``. A backend whose library is missing raises
``bptt_xval.model.BackendUnavailable`` when called, so it can be reported as skipped.
"""
