"""The Python PyTorch side of tools/bench_quine: the paper's vanilla quine
(20,100 parameters in one flat tensor, fixed coordinate projection, bias-free
SELU layers 100-100-100-1), the same computation as plugins/quine.

/usr/bin/python3 tools/bench_quine_pytorch.py --threads 2 --seconds 5
Prints one line per measurement: <name>_ms=<float> (milliseconds per call):
  sr_epoch_minibatch10_ms  2,010 Adamax steps of 10 coordinates (one epoch)
  sr_epoch_full_batch_ms   L_SR of all coordinates, backward, one Adamax step
  regenerate_ms            theta <- f_theta(C), in place
"""
import argparse
import time

import torch

SIZES = [100, 100, 100]  # coordinate embedding, then the hidden layers


class Quine(torch.nn.Module):
    def __init__(self):
        super().__init__()
        shapes = [(SIZES[i + 1], SIZES[i]) for i in range(len(SIZES) - 1)]
        shapes.append((1, SIZES[-1]))
        self.shapes = shapes
        n = sum(r * c for r, c in shapes)
        theta = torch.cat([torch.randn(r * c) / c ** 0.5 for r, c in shapes])
        self.theta = torch.nn.Parameter(theta)
        self.register_buffer("projection", torch.randn(n, SIZES[0]) / n ** 0.5)
        self.n = n

    def views(self):
        out, offset = [], 0
        for r, c in self.shapes:
            out.append(self.theta[offset:offset + r * c].view(r, c))
            offset += r * c
        return out

    def predict(self, embedded):
        *hidden, head = self.views()
        h = embedded
        for w in hidden:
            h = torch.selu(torch.nn.functional.linear(h, w))
        return torch.nn.functional.linear(h, head).squeeze(1)

    def sr_loss(self, coords):
        target = self.theta.detach()[coords]
        return (self.predict(self.projection[coords]) - target).pow(2).sum()

    @torch.no_grad()
    def regenerate(self):
        self.theta.copy_(self.predict(self.projection))


def per_call_ms(fn, seconds):
    fn()  # warm-up
    calls, began = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - began < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - began) / calls * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    quine = Quine()
    adamax = torch.optim.Adamax(quine.parameters(), lr=0.002)
    order = torch.randperm(quine.n)
    everything = torch.arange(quine.n)

    def minibatch_epoch():
        for start in range(0, quine.n, 10):
            adamax.zero_grad()
            quine.sr_loss(order[start:start + 10]).backward()
            adamax.step()

    def full_batch_epoch():
        adamax.zero_grad()
        quine.sr_loss(everything).backward()
        adamax.step()

    initial = quine.theta.detach().clone()

    def regenerate():
        quine.regenerate()
        with torch.no_grad():
            quine.theta.copy_(initial)

    print(f"sr_epoch_minibatch10_ms={per_call_ms(minibatch_epoch, args.seconds):.3f}")
    print(f"sr_epoch_full_batch_ms={per_call_ms(full_batch_epoch, args.seconds):.3f}")
    print(f"regenerate_ms={per_call_ms(regenerate, args.seconds):.3f}")


if __name__ == "__main__":
    main()
