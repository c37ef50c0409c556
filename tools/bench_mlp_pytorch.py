"""The Python PyTorch side of tools/bench_mlp: the same MLP training step.

/usr/bin/python3 tools/bench_mlp_pytorch.py --threads 2 --seconds 5
Prints: samples_per_second=<float>
"""
import argparse
import gzip
import time

import numpy as np
import torch

DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load_fashion_mnist():
    """The Fashion-MNIST training set: N x 1 x 28 x 28 floats in [0, 1], labels."""
    images = torch.from_numpy(
        read_idx(DIR + "/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    ).unsqueeze(1)
    labels = torch.from_numpy(read_idx(DIR + "/train-labels-idx1-ubyte.gz").astype(np.int64))
    return images, labels


def time_training(model, images, labels, batch_size, seconds):
    """Adam steps (cross-entropy) over consecutive batches for `seconds` after
    a 20-step warm-up. Returns (samples per second of wall clock, samples per
    second of this process's CPU time: steadier on a loaded machine)."""
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    n, b = images.shape[0], batch_size

    def step(start):
        x, y = images[start:start + b], labels[start:start + b]
        adam.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        adam.step()

    for i in range(20):  # warm-up
        step((i * b) % (n - b))
    steps, start = 0, 0
    began, began_cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - began < seconds:
        if start + b > n:
            start = 0
        step(start)
        start += b
        steps += 1
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - began_cpu
    return steps * b / elapsed, steps * b / cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch_size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images, labels = load_fashion_mnist()
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    samples_per_second, _ = time_training(model, images, labels, args.batch_size,
                                          args.seconds)
    print(f"samples_per_second={samples_per_second:.1f}")


if __name__ == "__main__":
    main()
