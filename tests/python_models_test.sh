#!/usr/bin/env bash
# python/ouroboros_models.py rebuilds a run's model in Python PyTorch from its
# config.json, loads the weights strictly and reproduces the run's test
# metrics: for the mlp and the hypernetwork plugin's mnist_conv net with
# ordinary and with generated kernels, trained by main on small IDX files
# this test writes itself.
set -euo pipefail
ws="$TEST_SRCDIR/ouroboros"
main="$ws/ouroboros/main"
module="$ws/python/ouroboros_models.py"
tmp="$TEST_TMPDIR"
fail() { echo "FAIL: $*" >&2; exit 1; }

# 28x28 images of 10 classes: class c is a bright 8x4 bar at one of 10
# places (jittered) on a noisy background. A quarter of the labels are
# random, so accuracy lands well between chance and 1 and a wrongly rebuilt
# model cannot match it by luck.
mkdir -p "$tmp/data"
/usr/bin/python3 - "$tmp/data" <<'PY'
import random, struct, sys

def write(path, dims, data):
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, len(dims)))  # ubyte IDX
        f.write(struct.pack(">%dI" % len(dims), *dims))
        f.write(bytes(data))

rng = random.Random(7)
for name, n in (("train", 500), ("test", 250)):
    images, labels = [], []
    for _ in range(n):
        c = rng.randrange(10)
        image = [rng.randrange(0, 120) for _ in range(28 * 28)]
        top = 2 + (c // 5) * 12 + rng.randrange(-2, 3)
        left = 2 + (c % 5) * 5 + rng.randrange(-1, 2)
        for r in range(top, top + 8):
            for col in range(max(left, 0), min(left + 4, 28)):
                image[r * 28 + col] = rng.randrange(140, 256)
        images += image
        labels.append(c if rng.random() < 0.75 else rng.randrange(10))
    write(f"{sys.argv[1]}/{name}-images.idx", [n, 28, 28], images)
    write(f"{sys.argv[1]}/{name}-labels.idx", [n], labels)
PY

# write_config NAME MODEL MODEL_CONFIG_JSON
write_config() {
  cat > "$tmp/$1.json" <<EOF
{
  "run_name": "$1",
  "model": "$2",
  "seed": 4,
  "data_config": {
    "dataset": "idx",
    "path": "$tmp/data",
    "idx_files": {
      "train_images": "train-images.idx", "train_labels": "train-labels.idx",
      "test_images": "test-images.idx", "test_labels": "test-labels.idx"
    },
    "split": {"val_fraction": 0.1}
  },
  "optim_config": {"name": "adam", "lr": 0.005},
  "run_config": {"epochs": 2, "batch_size": 25},
  "model_config": $3,
  "score_config": {"metrics": ["loss", "accuracy"]}
}
EOF
}
write_config mlp mlp '{"layer_sizes": [32, 16], "activation": "tanh", "dropout": 0.2}'
write_config conv_ordinary hypernetwork \
  '{"kernels": "ordinary", "conv_channels": 6, "kernel_size": 5}'
# 6 channels from 4x4 tiles: 2x2 tiles per kernel, cropped to 6x6.
write_config conv_generated hypernetwork \
  '{"kernels": "generated", "conv_channels": 6, "kernel_size": 5,
    "tile_in_channels": 4, "tile_out_channels": 4, "embedding_dim": 3}'

for name in mlp conv_ordinary conv_generated; do
  rc=0
  "$main" --config="$tmp/$name.json" --run_dir="$tmp/run_$name" --threads=1 \
    > "$tmp/$name.log" 2>&1 || rc=$?
  [ "$rc" = 0 ] || { cat "$tmp/$name.log"; fail "main exited $rc on $name.json"; }
done

# Python computes the test metrics again, from config.json and the newest
# weights only, and must agree with the C++ run's metrics.json.
/usr/bin/python3 - "$module" "$tmp" <<'PY'
import importlib.util, json, os, sys
import torch

torch.set_num_threads(1)  # as main --threads=1, and light on a loaded machine
spec = importlib.util.spec_from_file_location("ouroboros_models", sys.argv[1])
om = importlib.util.module_from_spec(spec)
spec.loader.exec_module(om)

failures = []
for name in ("mlp", "conv_ordinary", "conv_generated"):
    run = f"{sys.argv[2]}/run_{name}"
    model, config = om.load_run(run)  # strict load: every name must match
    inputs, targets = om.load_test_split(config)
    got = om.evaluate(model, inputs, targets)
    with open(f"{run}/metrics.json") as f:
        want = json.load(f)["test"]
    print(f"{name}: python accuracy {got['accuracy']:.4f} loss {got['loss']:.6f}; "
          f"metrics.json accuracy {want['accuracy']:.4f} loss {want['loss']:.6f}")
    # The same predictions: the same accuracy. The loss is summed in another
    # order (float32), so its last digits may differ: within 1e-6 relative.
    if got["accuracy"] != want["accuracy"]:
        failures.append(f"{name}: test accuracy {got['accuracy']!r} in Python, "
                        f"{want['accuracy']!r} in {run}/metrics.json")
    if abs(got["loss"] - want["loss"]) > 1e-6 * max(1.0, abs(want["loss"])):
        failures.append(f"{name}: test loss {got['loss']!r} in Python, "
                        f"{want['loss']!r} in {run}/metrics.json")
    # Chance is 0.1; a learnable pattern must have been learnt.
    if want["accuracy"] < 0.3:
        failures.append(f"{name}: test accuracy {want['accuracy']:.4f} is near "
                        "chance: the run did not learn, so matching proves little")
# A family this file does not rebuild: its own reason, not a data error.
quine = f"{sys.argv[2]}/not_rebuilt"
os.makedirs(quine, exist_ok=True)
with open(f"{quine}/config.json", "w") as f:
    json.dump({"model": "quine", "data_config": {"dataset": "quine_coordinates"}}, f)
try:
    om.load_run(quine)
    failures.append("load_run rebuilt a quine")
except ValueError as e:
    if "model 'quine': only mlp and hypernetwork" not in str(e):
        failures.append(f"load_run on a quine: {e}")
if failures:
    sys.exit("FAIL: " + "\n  ".join(failures))
print("PASS")
PY
