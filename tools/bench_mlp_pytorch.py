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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch_size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images = torch.from_numpy(
        read_idx(DIR + "/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    ).unsqueeze(1)
    labels = torch.from_numpy(read_idx(DIR + "/train-labels-idx1-ubyte.gz").astype(np.int64))
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    n, b = images.shape[0], args.batch_size

    def step(start):
        x, y = images[start:start + b], labels[start:start + b]
        adam.zero_grad()
        loss_fn(model(x), y).backward()
        adam.step()

    for i in range(20):  # warm-up
        step((i * b) % (n - b))
    steps, start, began = 0, 0, time.perf_counter()
    while time.perf_counter() - began < args.seconds:
        if start + b > n:
            start = 0
        step(start)
        start += b
        steps += 1
    elapsed = time.perf_counter() - began
    print(f"samples_per_second={steps * b / elapsed:.1f}")


if __name__ == "__main__":
    main()
