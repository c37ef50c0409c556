"""The Python PyTorch side of tools/bench_srwm: the SRWM layer written per
step in Python PyTorch (the way the authors' reference code runs without its
CUDA kernel), forward + backward, same shapes and threads as
plugins/srwm:srwm_benchmark.

/usr/bin/python3 tools/bench_srwm_pytorch.py --threads 2 --head_dim 16
Prints: ms_per_iteration=<float>
"""
import argparse
import time

import torch


def srwm_per_step(x, w0, mode):
    """x: B x T x H x d, w0: H x (3d+4) x d -> y: B x T x H x d."""
    batch, steps, heads, d = x.shape
    rows = 3 * d + 4
    groups = torch.tensor([i // d if i < 3 * d else 3 for i in range(rows)])
    if mode == "matmul":
        times = lambda w, v: torch.matmul(w, v.unsqueeze(-1)).squeeze(-1)
    else:
        times = lambda w, v: (w * v.unsqueeze(-2)).sum(-1)
    w = w0.unsqueeze(0).expand(batch, heads, rows, d)
    outputs = []
    for t in range(steps):
        o = times(w, x[:, t])
        q = torch.softmax(o[..., d:2 * d], -1)
        k = torch.softmax(o[..., 2 * d:3 * d], -1)
        beta = torch.sigmoid(o[..., 3 * d:])
        z = times(w, q - k)
        w = w + (beta.index_select(-1, groups) * z).unsqueeze(-1) * k.unsqueeze(-2)
        outputs.append(o[..., :d])
    return torch.stack(outputs, 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head_dim", type=int, default=16)
    parser.add_argument("--mode", choices=["mulsum", "matmul"], default="mulsum")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    d = args.head_dim
    x = torch.randn(args.batch, args.steps, args.heads, d, requires_grad=True)
    w0 = (torch.randn(args.heads, 3 * d + 4, d) / d ** 0.5).requires_grad_()
    grad_y = torch.randn(args.batch, args.steps, args.heads, d)

    def iteration():
        x.grad = None
        w0.grad = None
        srwm_per_step(x, w0, args.mode).backward(grad_y)

    iteration()  # warm-up
    count, began = 0, time.perf_counter()
    while count < 2 or time.perf_counter() - began < args.seconds:
        iteration()
        count += 1
    elapsed = time.perf_counter() - began
    print(f"ms_per_iteration={elapsed / count * 1e3:.3f}")


if __name__ == "__main__":
    main()
