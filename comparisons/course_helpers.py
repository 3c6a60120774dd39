"""The suite's own definitions of the helpers courses hand out beside their notebooks, used
when a student's file imports the course's module and it is not there (a notebook downloaded
without its folder). Each is the course's documented function, written here from its
definition; the output says it was used and names ``--path DIR`` for the course's own copy.

    rnn_utils (deeplearning.ai, Sequence Models week 1): softmax over axis 0, sigmoid
    activation (CMU 11-785's mytorch/nn/activation.py, imported as ``activation``,
        ``nn.activation``, ``mytorch.nn.activation`` or ``.activation``): the classes
        Identity, Sigmoid, Tanh, ReLU that its GRUCell and RNNCell hold as ``self.r_act`` ...

The 11-785 classes serve both of the course's generations: ``forward(x)`` (also their
``__call__``) returns the activation and keeps it as ``state``; ``derivative()`` (Tanh's:
``derivative(state=None)``, the derivative at a state the caller kept) is the older
hand-out's, ``backward(dLdA)`` (Tanh's: ``backward(dLdA, state=None)``), dLdA times that
derivative, the newer one's.
"""

from __future__ import annotations

import numpy as np


def softmax(x):
    """Column-wise softmax, as the course's: exp(x - max) over axis 0, normalised."""
    e_x = np.exp(x - np.max(x, axis=0, keepdims=True))
    return e_x / e_x.sum(axis=0, keepdims=True)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class Activation:
    """11-785's base class: ``state`` holds the last output (the course's tests read it)."""

    def __init__(self):
        self.state = None

    def __call__(self, x):
        return self.forward(x)

    def derivative(self):
        raise NotImplementedError(f"{type(self).__name__}: the base class has no derivative")

    def backward(self, dLdA):
        """The newer hand-out's: dLdA times the derivative at the last output."""
        return dLdA * self.derivative()


class Identity(Activation):
    def forward(self, x):
        self.state = x
        return x

    def derivative(self):
        return 1.0


class Sigmoid(Activation):
    def forward(self, x):
        self.state = 1.0 / (1.0 + np.exp(-x))
        return self.state

    def derivative(self):
        return self.state * (1 - self.state)


class Tanh(Activation):
    """Tanh for BPTT: one object serves every time step, so the derivative may be taken at a
    ``state`` the caller kept for its step rather than at the last one computed."""

    def forward(self, x):
        self.state = np.tanh(x)
        return self.state

    def derivative(self, state=None):
        s = self.state if state is None else state
        return 1 - s ** 2

    def backward(self, dLdA, state=None):
        return dLdA * self.derivative(state)


class ReLU(Activation):
    def forward(self, x):
        self.state = np.maximum(x, 0)       # (the course's writes into x; this leaves it as it was)
        return self.state

    def derivative(self):
        return (self.state > 0).astype(float)


_ACTIVATIONS = {"Activation": Activation, "Identity": Identity, "Sigmoid": Sigmoid, "Tanh": Tanh, "ReLU": ReLU}

#: module name (its last component: ``mytorch.nn.activation`` is ``activation``) -> {name: the suite's definition}
HELPERS = {"rnn_utils": {"softmax": softmax, "sigmoid": sigmoid},
           "activation": _ACTIVATIONS, "rnn_activation": _ACTIVATIONS}
