#!/usr/bin/env python3
"""The regeneration map's Jacobian at a vanilla quine run's newest weights.

  /usr/bin/python3 tools/quine_jacobian.py RUN_DIR

Rebuilds f_theta(C) from the run's config.json and its newest
checkpoints/*.weights.pt (theta and the coordinate projection), scaled as
model_config.print_normalization says, and prints: rho at those weights; the
spectral radius of J there and at the print F(theta) (power iteration on
Jacobian-vector products, 60 steps); and where the dominant direction lives:
its energy in each weight matrix and the share of it along each matrix's
mean. plugins/quine/README.md quotes these numbers.
"""
import glob
import json
import math
import os
import sys

import torch
from torch.autograd.functional import jvp


def main(run):
  config = json.load(open(os.path.join(run, "config.json")))["model_config"]
  weights = torch.load(sorted(glob.glob(run + "/checkpoints/*.weights.pt"))[-1])
  theta = weights["theta"].double()
  projection = weights["coordinate_projection"].double()
  widths = [projection.shape[1]] + list(config.get("hidden_sizes", [100, 100]))
  shapes = [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]
  shapes.append((1, widths[-1]))
  sizes = [r * c for r, c in shapes]
  normalization = config.get("print_normalization", "none")
  # The initial scale is not in the checkpoint: right after a regeneration
  # the weights have it exactly (initial_norm), and so has each matrix
  # (per_matrix, centred).
  total_sq = float((theta ** 2).sum())
  centered_sq = [float(((p - p.mean()) ** 2).sum()) for p in theta.split(sizes)]

  def print_of(th):
    h = projection
    pieces = th.split(sizes)
    for piece, shape in zip(pieces[:-1], shapes[:-1]):
      h = torch.selu(h @ piece.view(shape).t())
    raw = (h @ pieces[-1].view(shapes[-1]).t()).squeeze(1)
    if normalization == "initial_norm":
      return raw * math.sqrt(total_sq) / raw.norm()
    if normalization == "per_matrix":
      out = []
      for piece, sq in zip(raw.split(sizes), centered_sq):
        centered = piece - piece.mean()
        out.append(centered * math.sqrt(sq) / centered.norm())
      return torch.cat(out)
    return raw

  def dominant(at, steps=60):
    torch.manual_seed(0)
    v = torch.randn_like(at)
    v /= v.norm()
    logs = []
    for i in range(steps):
      jv = jvp(print_of, at, v)[1]
      growth = jv.norm()
      v = jv / growth
      if i >= steps // 2:
        logs.append(math.log(float(growth)))
    return math.exp(sum(logs) / len(logs)), v

  printed = print_of(theta)
  print("rho at the checkpoint's weights %.4g" %
        float(((printed - theta) ** 2).sum() / (theta ** 2).sum()))
  radius, direction = dominant(theta)
  print("spectral radius at theta %.4g" % radius)
  print("spectral radius at the print F(theta) %.4g" % dominant(printed)[0])
  for index, piece in enumerate(direction.split(sizes)):
    energy = float((piece ** 2).sum())
    mean_share = float(piece.sum() ** 2 / piece.numel()) / max(energy, 1e-300)
    print("matrix %d %s: %.3f of the dominant direction's energy, %.3f of "
          "that along its mean" % (index, shapes[index], energy, mean_share))


if __name__ == "__main__":
  if len(sys.argv) != 2:
    sys.exit("usage: quine_jacobian.py RUN_DIR")
  main(sys.argv[1])
