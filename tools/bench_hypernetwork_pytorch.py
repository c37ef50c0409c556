"""The Python PyTorch side of tools/bench_hypernetwork: the hypernetwork
plugin's mnist_conv net (Ha et al.'s MNIST net), same layers, same batched
kernel generation, same Adam training step on Fashion-MNIST.

/usr/bin/python3 tools/bench_hypernetwork_pytorch.py --kernels generated \
    --threads 2 --seconds 5
Prints: samples_per_second=<float> cpu_samples_per_second=<float>
(the second per second of this process's CPU time: less sensitive to other
processes on a loaded machine).
"""
import argparse
import math

import torch
import torch.nn.functional as F

# The same data and timed training loop as the mlp benchmark (this directory).
from bench_mlp_pytorch import load_fashion_mnist, time_training


class MnistConvNet(torch.nn.Module):
    """conv 7x7 1->16, ReLU, pool, conv 7x7 16->16 (generated or ordinary,
    no bias), ReLU, pool, linear: plugins/hypernetwork's mnist_conv."""

    def __init__(self, generated, channels=16, f=7, n_z=4, d=4, tile=16):
        super().__init__()
        self.f, self.tile, self.channels = f, tile, channels
        self.conv1 = torch.nn.Conv2d(1, channels, f, padding=f // 2)
        self.head = torch.nn.Linear(channels * 7 * 7, 10)
        self.generated = generated
        blocks = math.ceil(channels / tile)
        if generated:
            self.z = torch.nn.Parameter(torch.randn(blocks * blocks, n_z))
            self.w_in = torch.nn.Parameter(torch.randn(tile, d, n_z) / math.sqrt(n_z))
            self.b_in = torch.nn.Parameter(torch.zeros(tile, d))
            std = 1 / math.sqrt(3 * tile * f * f) / math.sqrt(d)
            self.w_out = torch.nn.Parameter(torch.randn(d, tile * f * f) * std)
            self.b_out = torch.nn.Parameter(torch.zeros(tile * f * f))
        else:
            bound = 1 / math.sqrt(channels * f * f)
            self.kernel = torch.nn.Parameter(
                torch.empty(channels, channels, f, f).uniform_(-bound, bound))

    def kernel2(self):
        if not self.generated:
            return self.kernel
        tiles, tile, f, c = self.z.shape[0], self.tile, self.f, self.channels
        a = torch.addmm(self.b_in.reshape(-1), self.z, self.w_in.reshape(tile * self.w_in.shape[1], -1).t())
        k = torch.addmm(self.b_out, a.reshape(tiles * tile, -1), self.w_out)
        blocks = math.ceil(c / tile)
        k = k.view(blocks, blocks, tile, tile, f, f).permute(0, 3, 1, 2, 4, 5)
        return k.reshape(blocks * tile, blocks * tile, f, f)[:c, :c]

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, self.kernel2(), padding=self.f // 2)), 2)
        return self.head(h.flatten(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernels", choices=["generated", "ordinary"], default="generated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch_size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images, labels = load_fashion_mnist()
    model = MnistConvNet(args.kernels == "generated")
    wall, cpu = time_training(model, images, labels, args.batch_size, args.seconds)
    print(f"samples_per_second={wall:.1f} cpu_samples_per_second={cpu:.1f}")


if __name__ == "__main__":
    main()
