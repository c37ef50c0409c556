"""The fused CPU SRWM layer of plugins/srwm, from Python PyTorch.

The modern self-referential weight matrix (Irie, Schlag, Csordas &
Schmidhuber, ICML 2022) as PyTorch operators from the C++ library
bazel-bin/plugins/srwm/libsrwm_op.so, and as the authors' multi-head layer:

    import ouroboros_srwm
    layer = ouroboros_srwm.SrwmLayer(num_heads=8, head_dim=16)  # D = 128
    out, state = layer(torch.randn(32, 64, 128))                # B x T x D
    out2, state = layer(torch.randn(32, 64, 128), state)        # continues

Build the library first: `tools/bootstrap && bazel build //plugins/srwm/...`
in the repository (or point OUROBOROS_SRWM_OP at a copy of it). The
operators, with x: B x T x H x d and r = 3d + 4 rows (y, q, k and 4 rates):

    torch.ops.ouroboros.srwm(x, w0) -> y                 w0: H x r x d
    torch.ops.ouroboros.srwm_with_state(x, w_init) -> (y, w_final)
                                              w_init, w_final: B x H x r x d
    torch.ops.ouroboros.srwm_frozen(x, w0) -> y          Fake-SR: W stays W0

The equations are in plugins/srwm/README.md ("The layer"). CPU only,
float32 or float64, any strides; differentiable once (no double backward);
torch.set_num_threads sets the threads. Use Debian's python3-torch
(/usr/bin/python3): the library is built against the same libtorch 1.13.
"""
import math
import os

import torch

LIBRARY_ENV = "OUROBOROS_SRWM_OP"
BUILD_COMMAND = "bazel build //plugins/srwm:libsrwm_op.so"
# This file is <repo>/python/ouroboros_srwm.py.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LIBRARY = os.path.join(REPO, "bazel-bin", "plugins", "srwm",
                               "libsrwm_op.so")

_loaded_library = None


def library_path():
    """$OUROBOROS_SRWM_OP if set, else the library in the repo's bazel-bin.

    Raises FileNotFoundError, saying how to build it, if it is not there.
    """
    path = os.environ.get(LIBRARY_ENV)
    if path:
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{LIBRARY_ENV}={path}: no such file. Build the library "
                f"with `{BUILD_COMMAND}` in the Ouroboros repository and "
                f"point {LIBRARY_ENV} at bazel-bin/plugins/srwm/"
                f"libsrwm_op.so, or unset {LIBRARY_ENV} to use "
                f"{DEFAULT_LIBRARY}")
        return path
    if not os.path.isfile(DEFAULT_LIBRARY):
        raise FileNotFoundError(
            f"the SRWM operator library {DEFAULT_LIBRARY} is not built: run "
            f"`cd {REPO} && tools/bootstrap && {BUILD_COMMAND}`, or set "
            f"{LIBRARY_ENV} to the path of libsrwm_op.so")
    return DEFAULT_LIBRARY


def load_library(path=None):
    """Registers torch.ops.ouroboros.*; returns the path it was loaded from.

    path: the library to load; default library_path(). Once per process:
    later calls return the first path (a second copy of the library would
    register the operators twice, which torch refuses).
    """
    global _loaded_library
    if _loaded_library is None:
        path = path or library_path()
        torch.ops.load_library(path)
        _loaded_library = path
    return _loaded_library


def srwm(x, w0):
    """y (B x T x H x d) from x (B x T x H x d) and w0 (H x r x d)."""
    load_library()
    return torch.ops.ouroboros.srwm(x, w0)


def srwm_with_state(x, w_init):
    """(y, w_final) from x and a state per batch element (B x H x r x d)."""
    load_library()
    return torch.ops.ouroboros.srwm_with_state(x, w_init)


def srwm_frozen(x, w0):
    """Fake-SR: y_t = W0[y rows] x_t, the same parameters, no updates."""
    load_library()
    return torch.ops.ouroboros.srwm_frozen(x, w0)


class SrwmLayer(torch.nn.Module):
    """The authors' multi-head SRWM layer on the fused CPU operator.

    As SRWMlayer in the authors' code (IDSIA/modern-srwm): the input h,
    B x T x D with D = num_heads x head_dim, is cut into heads of dimension
    d, each head runs its own SRWM from its own learned W0 (r x d), and

        out = LayerNorm(h) + Dropout(Linear(SRWM outputs))    (no bias)

    (h + ... with use_layer_norm=False). Batch first, where the authors'
    layer is time first. W0 starts as N(0, 1/d) in the y, q and k rows and
    N(beta_init, 1/d) in the 4 rows of the learning rates, as theirs.

    forward(h, state=None) -> (out, state). state is what the layer has
    modified itself by so far, W_T - W0 (B x H x r x d; None: nothing yet),
    which is also how the authors carry it. Pass it back in to go on with a
    long sequence chunk by chunk: as it is, gradients flow through it into
    the earlier chunks and the chunks give the values and gradients of the
    whole; state.detach() cuts backpropagation through time between chunks,
    and W0 still gets gradients from every chunk.

    frozen=True is Fake-SR (the authors' ablation): the same parameters,
    W stays W0, y_t = W0[y rows] x_t; it has no state (always None).
    """

    def __init__(self, num_heads, head_dim, dropout=0.0, use_layer_norm=True,
                 input_softmax=False, beta_init=-1.0, frozen=False):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.model_dim = num_heads * head_dim
        self.use_layer_norm = use_layer_norm
        self.input_softmax = input_softmax
        self.frozen = frozen
        rows = 3 * head_dim + 4
        # One parameter, rows [y, q, k, beta] as the operator takes them (and
        # as the C++ model names it).
        self.w0 = torch.nn.Parameter(torch.empty(num_heads, rows, head_dim))
        self.out_linear = torch.nn.Linear(self.model_dim, self.model_dim,
                                          bias=False)
        self.layer_norm = (torch.nn.LayerNorm(self.model_dim)
                           if use_layer_norm else None)
        self.dropout = torch.nn.Dropout(dropout)
        self.reset_parameters(beta_init)
        load_library()  # fail at construction, not at the first step

    def reset_parameters(self, beta_init=-1.0):
        std = 1.0 / math.sqrt(self.head_dim)
        with torch.no_grad():
            torch.nn.init.normal_(self.w0, mean=0.0, std=std)
            self.w0[:, 3 * self.head_dim:].add_(beta_init)

    def forward(self, h, state=None):
        heads, d = self.num_heads, self.head_dim
        if h.dim() != 3 or h.shape[-1] != self.model_dim:
            raise ValueError(
                f"SrwmLayer: h must be B x T x {self.model_dim} (num_heads "
                f"{heads} x head_dim {d}); got shape {tuple(h.shape)}")
        if h.dtype != self.w0.dtype:
            raise ValueError(
                f"SrwmLayer: h is {h.dtype} but the layer's parameters are "
                f"{self.w0.dtype}: convert one (layer.to(h.dtype))")
        batch, steps, _ = h.shape
        x = h.reshape(batch, steps, heads, d)
        if self.input_softmax:
            x = torch.softmax(x, dim=-1)
        if self.frozen:
            if state is not None:
                raise ValueError("SrwmLayer: a frozen (Fake-SR) layer has no "
                                 "state; pass state=None")
            y, new_state = srwm_frozen(x, self.w0), None
        else:
            expected = (batch, heads, 3 * d + 4, d)
            if state is not None and tuple(state.shape) != expected:
                raise ValueError(
                    f"SrwmLayer: state must be B x H x (3d + 4) x d = "
                    f"{expected} for h of shape {tuple(h.shape)}; got shape "
                    f"{tuple(state.shape)}")
            w_init = (self.w0.expand(expected) if state is None
                      else self.w0 + state)
            y, w_final = srwm_with_state(x, w_init)
            new_state = w_final - self.w0
        out = self.dropout(self.out_linear(y.reshape(batch, steps,
                                                     self.model_dim)))
        residual = self.layer_norm(h) if self.use_layer_norm else h
        return residual + out, new_state

    def extra_repr(self):
        return (f"num_heads={self.num_heads}, head_dim={self.head_dim}, "
                f"frozen={self.frozen}, input_softmax={self.input_softmax}")
