#!/usr/bin/python3
"""Tests of the SRWM operators for Python (libsrwm_op.so) and of the module
python/ouroboros_srwm.py around them, with Debian's python3-torch.

    srwm_op_test.py LIBRARY MODULE     (bazel test //plugins/srwm:srwm_op_test)

The operators are checked against a per-step reference written here from
the equations, in the paper's notation (sub-matrices W_y, W_q, W_k, W_b;
v = W q~, v-bar = W k~), not in the kernel's fused form.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest

import torch

LIBRARY = os.path.abspath(sys.argv[1])
MODULE = os.path.abspath(sys.argv[2])
BUILD_COMMAND = "bazel build //plugins/srwm:libsrwm_op.so"


def import_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


os.environ["OUROBOROS_SRWM_OP"] = LIBRARY
osrwm = import_module(MODULE, "ouroboros_srwm")
osrwm.load_library()
ops = torch.ops.ouroboros
torch.set_num_threads(1)  # light on a loaded machine; ThreadsTest sets 2


def matvec(w, v):
    """w: B x H x m x n, v: B x H x n -> B x H x m."""
    return torch.einsum("bhmn,bhn->bhm", w, v)


def reference(x, w_init):
    """y (B x T x H x d) and W_T (B x H x r x d), one step at a time:
    [y, q, k, b] = W x_t; q~, k~ = softmax(q, k); beta = sigmoid(b);
    W += beta_(row's sub-matrix) (W q~ - W k~) k~^T."""
    batch, steps, heads, d = x.shape
    w = w_init
    outputs = []
    for t in range(steps):
        x_t = x[:, t]
        w_y, w_q, w_k, w_b = torch.split(w, [d, d, d, 4], dim=2)
        outputs.append(matvec(w_y, x_t))
        q = torch.softmax(matvec(w_q, x_t), dim=-1)
        k = torch.softmax(matvec(w_k, x_t), dim=-1)
        beta = torch.sigmoid(matvec(w_b, x_t))
        v, v_bar = matvec(w, q), matvec(w, k)
        # beta[0] for the d rows of W_y, beta[1] for W_q, beta[2] for W_k,
        # beta[3] for the 4 rows of W_b.
        row_rate = torch.repeat_interleave(
            beta, torch.tensor([d, d, d, 4]), dim=-1)
        w = w + torch.einsum("bhi,bhj->bhij", row_rate * (v - v_bar), k)
    return torch.stack(outputs, dim=1), w


def relative_error(actual, expected):
    return ((actual - expected).abs().max() /
            expected.abs().max().clamp_min(1e-30)).item()


# (B, T, H, d): T = 1, B = 1, odd head dims (remainders in the kernel's
# vector loops) and d = 16 (the kernel's specialised loops).
SHAPES = [(2, 5, 3, 7), (1, 1, 2, 5), (3, 4, 1, 3), (1, 6, 2, 16),
          (2, 9, 2, 4)]
# Largest error allowed: outputs (absolute), gradients (relative; the
# backward rebuilds W_{t-1} from W_t, README "Numerics").
TOLERANCE = {torch.float32: (1e-5, 1e-4), torch.float64: (1e-12, 1e-10)}


def random_inputs(shape, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    batch, steps, heads, d = shape
    rows = 3 * d + 4

    def randn(*size):
        return torch.randn(*size, generator=generator, dtype=dtype)

    return {"x": randn(batch, steps, heads, d),
            "w0": randn(heads, rows, d) / d ** 0.5,
            "w_init": randn(batch, heads, rows, d) / d ** 0.5,
            "grad_y": randn(batch, steps, heads, d),
            "grad_w_final": randn(batch, heads, rows, d)}


def gradients(function, inputs, names, grad_names):
    """function(*inputs[names]) and the gradients of sum(output * grad) with
    respect to the inputs."""
    leaves = [inputs[n].clone().requires_grad_() for n in names]
    outputs = function(*leaves)
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)
    loss = sum((o * inputs[g]).sum() for o, g in zip(outputs, grad_names))
    return [o.detach() for o in outputs], torch.autograd.grad(loss, leaves)


class OperatorTest(unittest.TestCase):

    def assert_matches(self, actual, expected, dtype, what):
        value_tolerance, gradient_tolerance = TOLERANCE[dtype]
        (outputs, grads), (ref_outputs, ref_grads) = actual, expected
        for name, a, e in zip(("y", "w_final"), outputs, ref_outputs):
            self.assertEqual(a.shape, e.shape, f"{what}: {name}")
            self.assertEqual(a.dtype, dtype)
            error = (a - e).abs().max().item()
            self.assertLessEqual(error, value_tolerance, f"{what}: {name}")
        for i, (a, e) in enumerate(zip(grads, ref_grads)):
            self.assertEqual(a.shape, e.shape)
            self.assertLessEqual(relative_error(a, e), gradient_tolerance,
                                 f"{what}: gradient of input {i}")

    def test_srwm_matches_per_step_reference(self):
        for dtype in (torch.float32, torch.float64):
            for seed, shape in enumerate(SHAPES):
                inputs = random_inputs(shape, dtype, seed)
                batch = shape[0]

                def expanded_reference(x, w0):
                    return reference(x, w0.expand(batch, *w0.shape))[0]

                self.assert_matches(
                    gradients(ops.srwm, inputs, ["x", "w0"], ["grad_y"]),
                    gradients(expanded_reference, inputs, ["x", "w0"],
                              ["grad_y"]),
                    dtype, f"srwm {shape} {dtype}")

    def test_srwm_with_state_matches_per_step_reference(self):
        # Gradients flow in through both outputs and out to the initial
        # state.
        for dtype in (torch.float32, torch.float64):
            for seed, shape in enumerate(SHAPES):
                inputs = random_inputs(shape, dtype, 10 + seed)
                names, grads = ["x", "w_init"], ["grad_y", "grad_w_final"]
                self.assert_matches(
                    gradients(ops.srwm_with_state, inputs, names, grads),
                    gradients(reference, inputs, names, grads),
                    dtype, f"srwm_with_state {shape} {dtype}")

    def test_srwm_is_srwm_with_state_from_w0(self):
        inputs = random_inputs((2, 6, 3, 5), torch.float64, 3)
        x, w0 = inputs["x"], inputs["w0"]
        y, w_final = ops.srwm_with_state(x, w0.expand(2, *w0.shape))
        self.assertTrue(torch.equal(ops.srwm(x, w0), y))
        self.assertGreater((w_final - w0).abs().max().item(), 1e-3)

    def test_frozen_is_fake_sr(self):
        # Fake-SR: W stays W0, y_t = W0[y rows] x_t. It equals the SRWM at
        # the first step only: later steps see the self-modified W.
        inputs = random_inputs((2, 5, 3, 7), torch.float64, 4)
        x, w0 = inputs["x"], inputs["w0"]
        frozen = ops.srwm_frozen(x, w0)
        w_fixed = w0.expand(2, *w0.shape)
        for t in range(5):
            expected = matvec(w_fixed[:, :, :7], x[:, t])
            self.assertLessEqual((frozen[:, t] - expected).abs().max(), 1e-12)
        y = ops.srwm(x, w0)
        self.assertLessEqual((y[:, 0] - frozen[:, 0]).abs().max(), 1e-12)
        self.assertGreater((y[:, 1:] - frozen[:, 1:]).abs().max(), 1e-3)
        x.requires_grad_()
        w0.requires_grad_()
        self.assertTrue(torch.autograd.gradcheck(ops.srwm_frozen, (x, w0)))

    def test_gradcheck_in_float64(self):
        inputs = random_inputs((2, 4, 2, 3), torch.float64, 5)
        x = inputs["x"].requires_grad_()
        w0 = inputs["w0"].requires_grad_()
        w_init = inputs["w_init"].requires_grad_()
        self.assertTrue(torch.autograd.gradcheck(ops.srwm, (x, w0)))
        # Both outputs, so also dL/dW_final -> dL/dw_init and dL/dx.
        self.assertTrue(
            torch.autograd.gradcheck(ops.srwm_with_state, (x, w_init)))

    def test_empty_sequence_keeps_the_state(self):
        w_init = torch.randn(2, 3, 16, 4, dtype=torch.float64,
                             requires_grad=True)
        x = torch.randn(2, 0, 3, 4, dtype=torch.float64, requires_grad=True)
        y, w_final = ops.srwm_with_state(x, w_init)
        self.assertEqual(y.shape, (2, 0, 3, 4))
        self.assertTrue(torch.equal(w_final, w_init))
        grad = torch.randn_like(w_final)
        (w_final * grad).sum().backward()
        self.assertTrue(torch.equal(w_init.grad, grad))

    def test_any_strides(self):
        inputs = random_inputs((3, 5, 2, 6), torch.float64, 6)
        x, w0, w_init = inputs["x"], inputs["w0"], inputs["w_init"]
        # The same values in other memory layouts: transposed, and a slice
        # of a larger tensor.
        x_strided = x.permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3)
        w0_strided = torch.zeros(2, 22, 12, dtype=torch.float64)[:, :, ::2]
        w0_strided.copy_(w0)
        w_init_strided = w_init.transpose(2, 3).contiguous().transpose(2, 3)
        for t in (x_strided, w0_strided, w_init_strided):
            self.assertFalse(t.is_contiguous())
        for function, args, strided_args in (
                (ops.srwm, (x, w0), (x_strided, w0_strided)),
                (ops.srwm_with_state, (x, w_init), (x_strided, w_init_strided)),
                (ops.srwm_frozen, (x, w0), (x_strided, w0_strided))):
            leaves = [a.clone().requires_grad_() for a in args]
            strided_leaves = [a.detach().requires_grad_() for a in strided_args]
            out = function(*leaves)
            strided_out = function(*strided_leaves)
            out = out if isinstance(out, torch.Tensor) else out[0]
            strided_out = (strided_out if isinstance(strided_out, torch.Tensor)
                           else strided_out[0])
            self.assertTrue(torch.equal(out, strided_out))
            # A gradient that is itself not contiguous (transposed).
            grad = torch.randn(out.shape[::-1], dtype=out.dtype).permute(
                3, 2, 1, 0)
            out.backward(grad)
            strided_out.backward(grad)
            for a, b in zip(leaves, strided_leaves):
                self.assertTrue(torch.equal(a.grad, b.grad))

    def test_bad_arguments_raise_runtime_errors_naming_them(self):
        x = torch.randn(2, 5, 3, 4)
        w0 = torch.randn(3, 16, 4)
        w_init = torch.randn(2, 3, 16, 4)
        cases = [
            (ops.srwm, (torch.randn(2, 3, 4), w0),
             r"srwm: x must be 4-D, B x T x H x d .*got shape \[2, 3, 4\]"),
            (ops.srwm, (torch.randn(2, 3, 4, 0), torch.randn(4, 4, 0)),
             r"srwm: x's head dim d \(its last dim\) must be >= 1"),
            (ops.srwm, (x, torch.randn(3, 15, 4)),
             r"srwm: w0 must be H x \(3d \+ 4\) x d = 3 x 16 x 4 for x of "
             r"shape \[2, 5, 3, 4\]; got shape \[3, 15, 4\]"),
            (ops.srwm, (x, torch.randn(2, 16, 4)),
             r"w0 must be H x \(3d \+ 4\) x d = 3 x 16 x 4 .*got shape "
             r"\[2, 16, 4\]"),
            (ops.srwm, (x, w_init),
             r"w0 must be H x \(3d \+ 4\) x d = 3 x 16 x 4"),
            (ops.srwm_with_state, (x, w0),
             r"srwm_with_state: w_init must be B x H x \(3d \+ 4\) x d = "
             r"2 x 3 x 16 x 4 for x of shape \[2, 5, 3, 4\]; got shape "
             r"\[3, 16, 4\]"),
            (ops.srwm_with_state, (x, torch.randn(1, 3, 16, 4)),
             r"w_init must be B x H x \(3d \+ 4\) x d = 2 x 3 x 16 x 4"),
            (ops.srwm_frozen, (x, torch.randn(3, 16, 5)),
             r"srwm_frozen: w0 must be H x \(3d \+ 4\) x d = 3 x 16 x 4"),
            (ops.srwm, (x.int(), w0.int()),
             r"srwm: x must be float32 or float64; got Int"),
            (ops.srwm, (x.half(), w0.half()),
             r"x must be float32 or float64; got Half"),
            (ops.srwm, (x.double(), w0),
             r"srwm: w0 must have x's dtype float64; got float32"),
            (ops.srwm_with_state, (x, w_init.double()),
             r"srwm_with_state: w_init must have x's dtype float32; got "
             r"float64"),
            (ops.srwm, (x.to("meta"), w0),
             r"srwm: x and w0 must be CPU tensors \(there is no CUDA "
             r"kernel\); got x on meta, w0 on cpu"),
        ]
        for function, args, pattern in cases:
            with self.subTest(pattern=pattern):
                with self.assertRaisesRegex(RuntimeError, pattern):
                    function(*args)

    def test_double_backward_raises(self):
        x = torch.randn(2, 5, 3, 4, requires_grad=True)
        w0 = torch.randn(3, 16, 4, requires_grad=True)
        with self.assertRaisesRegex(RuntimeError,
                                    "double backward .* is not supported"):
            torch.autograd.grad(ops.srwm(x, w0).sum(), x, create_graph=True)


class ThreadsTest(unittest.TestCase):

    def test_same_results_with_one_and_two_threads(self):
        inputs = random_inputs((4, 7, 4, 16), torch.float32, 7)
        names, grads = ["x", "w_init"], ["grad_y", "grad_w_final"]
        results = []
        try:
            for threads in (1, 2):
                torch.set_num_threads(threads)
                results.append(gradients(ops.srwm_with_state, inputs, names,
                                         grads))
        finally:
            torch.set_num_threads(1)
        # Each (b, h) pair runs whole in one thread: the same arithmetic.
        for a, b in zip([*results[0][0], *results[0][1]],
                        [*results[1][0], *results[1][1]]):
            self.assertTrue(torch.equal(a, b))

    def test_set_num_threads_is_obeyed(self):
        # The layer's at::parallel_for is an OpenMP loop inlined from ATen's
        # headers: it runs on the shared libgomp pool only if the library
        # was built with -fopenmp. A fresh process: a forward at one thread
        # starts no thread, one at two threads starts the pool's second.
        # (set_num_threads itself starts a thread of its own, for the
        # pthreadpool of XNNPACK: counted before the forward.)
        script = (
            "import os, sys, torch\n"
            "torch.set_num_threads(1)\n"
            "torch.ops.load_library(sys.argv[1])\n"
            "x = torch.randn(4, 8, 4, 16)\n"
            "w0 = torch.randn(4, 52, 16) / 4\n"
            "count = lambda: len(os.listdir('/proc/self/task'))\n"
            "before = count()\n"
            "torch.ops.ouroboros.srwm(x, w0)\n"
            "one = count()\n"
            "torch.set_num_threads(2)\n"
            "before_two = count()\n"
            "torch.ops.ouroboros.srwm(x, w0)\n"
            "print(before, one, before_two, count())\n")
        result = subprocess.run([sys.executable, "-c", script, LIBRARY],
                                capture_output=True, text=True, check=True)
        before, one, before_two, two = map(int, result.stdout.split())
        self.assertEqual(one, before, "threads started at set_num_threads(1)")
        self.assertEqual(two, before_two + 1,
                         "no OpenMP thread at set_num_threads(2)")


class ModuleTest(unittest.TestCase):

    def make_layer(self, **options):
        torch.manual_seed(8)
        layer = osrwm.SrwmLayer(num_heads=2, head_dim=5, **options).double()
        with torch.no_grad():  # not the identity, so the test sees them
            layer.layer_norm.weight.uniform_(0.5, 1.5)
            layer.layer_norm.bias.uniform_(-0.5, 0.5)
        return layer

    def test_layer_is_layer_norm_plus_projected_srwm(self):
        for frozen in (False, True):
            layer = self.make_layer(frozen=frozen)
            h = torch.randn(3, 6, 10, dtype=torch.float64)
            out, state = layer(h)
            w0 = layer.w0.detach().expand(3, 2, 19, 5)
            y, w_final = reference(h.view(3, 6, 2, 5), w0)
            if frozen:
                y = torch.einsum("hij,bthj->bthi", w0[0, :, :5], h.view(
                    3, 6, 2, 5))
                self.assertIsNone(state)
            else:
                self.assertLessEqual(
                    (state - (w_final - w0)).abs().max().item(), 1e-12)
            expected = layer.layer_norm(h) + layer.out_linear(
                y.reshape(3, 6, 10))
            self.assertLessEqual((out - expected).abs().max().item(), 1e-12)

    def test_initialisation_as_the_authors(self):
        torch.manual_seed(9)
        layer = osrwm.SrwmLayer(num_heads=8, head_dim=16, beta_init=-1.0)
        self.assertEqual(tuple(layer.w0.shape), (8, 52, 16))
        self.assertIsNone(layer.out_linear.bias)
        rates = layer.w0[:, 48:].detach()
        others = layer.w0[:, :48].detach()
        self.assertAlmostEqual(rates.mean().item(), -1.0, delta=0.1)
        self.assertAlmostEqual(others.mean().item(), 0.0, delta=0.05)
        self.assertAlmostEqual(others.std().item(), 0.25, delta=0.02)

    def test_chunks_equal_the_whole_sequence(self):
        layer = self.make_layer(input_softmax=True)
        h = torch.randn(3, 13, 10, dtype=torch.float64, requires_grad=True)
        grad = torch.randn(3, 13, 10, dtype=torch.float64)
        whole, whole_state = layer(h)
        whole_grads = torch.autograd.grad((whole * grad).sum(),
                                          [h] + list(layer.parameters()))
        outputs, state, begin = [], None, 0
        for length in (5, 1, 7):
            out, state = layer(h[:, begin:begin + length], state)
            outputs.append(out)
            begin += length
        chunked = torch.cat(outputs, dim=1)
        chunked_grads = torch.autograd.grad((chunked * grad).sum(),
                                            [h] + list(layer.parameters()))
        self.assertLessEqual((chunked - whole).abs().max().item(), 1e-12)
        self.assertLessEqual((state - whole_state).abs().max().item(), 1e-12)
        for a, b in zip(chunked_grads, whole_grads):
            self.assertLessEqual(relative_error(a, b), 1e-10)

    def test_detached_state_truncates_backpropagation(self):
        layer = self.make_layer()
        h = torch.randn(2, 8, 10, dtype=torch.float64, requires_grad=True)
        first, state = layer(h[:, :4])
        second, _ = layer(h[:, 4:], state.detach())
        whole, _ = layer(h)
        self.assertLessEqual(
            (torch.cat([first, second], 1) - whole).abs().max().item(), 1e-12)
        second.sum().backward()
        self.assertEqual(h.grad[:, :4].abs().max().item(), 0.0)
        self.assertGreater(layer.w0.grad.abs().max().item(), 0.0)

    def test_bad_module_inputs(self):
        layer = self.make_layer()
        with self.assertRaisesRegex(ValueError, r"h must be B x T x 10 "
                                    r"\(num_heads 2 x head_dim 5\)"):
            layer(torch.randn(3, 6, 8, dtype=torch.float64))
        with self.assertRaisesRegex(ValueError, r"state must be B x H x "
                                    r"\(3d \+ 4\) x d = \(3, 2, 19, 5\)"):
            layer(torch.randn(3, 6, 10, dtype=torch.float64),
                  torch.zeros(2, 2, 19, 5, dtype=torch.float64))
        with self.assertRaisesRegex(ValueError, "h is torch.float32 but the "
                                    "layer's parameters are torch.float64"):
            layer(torch.randn(3, 6, 10))
        with self.assertRaisesRegex(ValueError, "frozen .* has no state"):
            self.make_layer(frozen=True)(
                torch.randn(3, 6, 10, dtype=torch.float64),
                torch.zeros(3, 2, 19, 5, dtype=torch.float64))


class LibraryPathTest(unittest.TestCase):

    def test_environment_variable_and_repository_default(self):
        with tempfile.TemporaryDirectory() as repo:
            # A checkout without the library: the module alone, under
            # <repo>/python/.
            os.mkdir(os.path.join(repo, "python"))
            copy = os.path.join(repo, "python", "ouroboros_srwm.py")
            with open(MODULE) as source, open(copy, "w") as target:
                target.write(source.read())
            module = import_module(copy, "ouroboros_srwm_copy")
            saved = os.environ.pop("OUROBOROS_SRWM_OP")
            try:
                with self.assertRaisesRegex(FileNotFoundError,
                                            "is not built: run .*"
                                            + BUILD_COMMAND):
                    module.library_path()
                built = os.path.join(repo, "bazel-bin", "plugins", "srwm")
                os.makedirs(built)
                os.symlink(LIBRARY, os.path.join(built, "libsrwm_op.so"))
                self.assertEqual(module.library_path(),
                                 os.path.join(built, "libsrwm_op.so"))
                os.environ["OUROBOROS_SRWM_OP"] = os.path.join(repo, "nothing")
                with self.assertRaisesRegex(
                        FileNotFoundError,
                        "OUROBOROS_SRWM_OP=.*nothing: no such file.*"
                        + BUILD_COMMAND):
                    module.library_path()
            finally:
                os.environ["OUROBOROS_SRWM_OP"] = saved
            self.assertEqual(module.library_path(), LIBRARY)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
