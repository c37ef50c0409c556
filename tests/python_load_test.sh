#!/usr/bin/env bash
# The weights a run saves open in Python PyTorch (python3-torch) with
# torch.load, as a plain dict of name -> tensor, and rebuild the same MLP.
set -euo pipefail
ws="$TEST_SRCDIR/ouroboros"
run="$TEST_TMPDIR/run"
"$ws/ouroboros/main" --config="$ws/tests/testdata/tiny_mlp.json" \
  --run_dir="$run" --threads=1 > "$TEST_TMPDIR/main.txt" 2>&1 ||
  { cat "$TEST_TMPDIR/main.txt"; echo "FAIL: main exited $?" >&2; exit 1; }
weights="$run/checkpoints/step-000000024.weights.pt"
[ -s "$weights" ] || { echo "FAIL: $weights not written" >&2; exit 1; }

/usr/bin/python3 - "$weights" <<'PY'
import sys
import torch

weights = torch.load(sys.argv[1])
assert type(weights) is dict, type(weights)
# tests/testdata/tiny_mlp.json: 8 features -> [16] -> 3 classes.
expected = {
    "layers.linear0.weight": (16, 8), "layers.linear0.bias": (16,),
    "layers.output.weight": (3, 16), "layers.output.bias": (3,),
}
shapes = {name: tuple(t.shape) for name, t in weights.items()}
assert shapes == expected, shapes
for name, t in weights.items():
    assert t.dtype == torch.float32, (name, t.dtype)
    assert torch.isfinite(t).all(), name
# Trained, not the initialisation: the same module built in Python takes the
# dict as its state_dict (strict: no missing or unexpected keys).
net = torch.nn.Sequential()
net.add_module("linear0", torch.nn.Linear(8, 16))
net.add_module("activation0", torch.nn.ReLU())
net.add_module("output", torch.nn.Linear(16, 3))
net.load_state_dict({k.removeprefix("layers."): v for k, v in weights.items()})
logits = net(torch.zeros(2, 8))
assert logits.shape == (2, 3)
print("python3 torch", torch.__version__, "loaded", len(weights), "tensors")
# The best checkpoint's weights sit beside best.ckpt, in the same format.
best = torch.load(sys.argv[1].rsplit("/", 1)[0] + "/best.weights.pt")
assert type(best) is dict and best.keys() == weights.keys(), best.keys()
net.load_state_dict({k.removeprefix("layers."): v for k, v in best.items()})
print("and best.weights.pt")
PY
