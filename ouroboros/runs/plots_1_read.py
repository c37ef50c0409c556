"""Plots of Ouroboros runs, drawn with matplotlib (Debian's python3-matplotlib).

  plots.py run RUN_DIR
      RUN_DIR/plots/: loss.png (train against validation), <metric>.png (the
      monitored metric), lr.png (the learning rate), and the family's own
      figures listed in RUN_DIR/plots/figures.json.
  plots.py compare [--out DIR] [--metric NAME] [--mark_steps S,S,...]
                   [--title TEXT] RUN_DIR...
      One chart per curve with every run on it (compare_<curve>.png), and the
      runs' metrics.json side by side: a table on stdout, compare.md and
      compare.csv in DIR (default: the current directory). The table's first
      columns are the config fields whose values differ between the runs, by
      their paths (optim_config.lr). Runs whose configs differ only in seed
      are grouped: a second table gives each group's mean +- std of every
      metric over its seeds (compare_seeds.md, compare_seeds.csv), and the
      charts draw a group as its mean curve in a +- std band.

Main runs `run` when a run ends (run_config.skip_plots turns that off), a tune
and a parallel job run `compare` over their trials and members, and
tools/compare_runs runs `compare` over any run directories. The main binary
carries this script's text (ouroboros/runs/BUILD: embed_text) and hands it
to `python3 -c`, so a run needs no file of the source tree.

The script is four files joined in order, each under 500 lines: this one
(reading runs, and what every figure shares), plots_2_run.py (one run's
figures), plots_3_compare.py (several runs side by side) and
plots_4_main.py (the command line).

A run directory holds (ouroboros/runs/run_layout.h): config.json, epochs.jsonl (one
line per epoch: epoch, step, train_loss, lr, the "val" or "test" metrics and
the "model" metrics), steps.jsonl (step, epoch, loss, lr every
run_config.log_every_steps), evals.jsonl (the "val" and "test" metrics every
run_config.eval_every_steps) and metrics.json. A resumed run repeats the steps
after its checkpoint: the later record of a step or an epoch wins.

Exit codes: 0 drawn, 2 bad input (a missing directory, no records), 3
matplotlib is missing.
"""

import argparse
import base64
import csv
import html
import io
import json
import math
import os
import sys

EXIT_BAD_INPUT = 2
EXIT_NO_MATPLOTLIB = 3


class BadInput(Exception):
  pass


def read_json(path, default=None):
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return default
  except (OSError, ValueError) as e:
    raise BadInput("%s: not readable JSON (%s)" % (path, e))


def read_jsonl(path):
  """The records of a JSON-lines file; a torn last line (a kill) is skipped."""
  records = []
  try:
    with open(path) as f:
      for line in f:
        line = line.strip()
        if not line:
          continue
        try:
          records.append(json.loads(line))
        except ValueError:
          continue
  except FileNotFoundError:
    pass
  return records


def latest_by(records, key):
  """One record per value of `key`, the last one written, in key order."""
  by_key = {}
  for record in records:
    if key in record:
      by_key[record[key]] = record
  return [by_key[k] for k in sorted(by_key)]


class Run:
  """One run directory's records."""

  def __init__(self, run_dir, label=None):
    if not os.path.isdir(run_dir):
      raise BadInput("%s: no such run directory" % run_dir)
    self.dir = run_dir
    self.config = read_json(os.path.join(run_dir, "config.json"), {}) or {}
    self.metrics = read_json(os.path.join(run_dir, "metrics.json"), {}) or {}
    self.epochs = latest_by(
        read_jsonl(os.path.join(run_dir, "epochs.jsonl")), "epoch")
    self.steps = latest_by(
        read_jsonl(os.path.join(run_dir, "steps.jsonl")), "step")
    self.evals = latest_by(
        read_jsonl(os.path.join(run_dir, "evals.jsonl")), "step")
    self.label = label or self._default_label()

  def _default_label(self):
    parts = os.path.normpath(os.path.abspath(self.dir)).split(os.sep)
    # saves/<run_name>/<timestamp>: the name says more than the time.
    if len(parts) >= 2 and parts[-1][:8].isdigit():
      return "%s/%s" % (parts[-2], parts[-1])
    return parts[-1]

  def has_records(self):
    return bool(self.epochs or self.steps or self.evals or self.metrics)

  def monitor(self):
    score = self.config.get("score_config", {})
    monitor = score.get("monitor")
    if monitor:
      return monitor
    names = self.epoch_metric_names()
    for preferred in ("accuracy", "rho"):
      if preferred in names:
        return preferred
    others = [n for n in names if n != "loss"]
    return others[0] if others else None

  def monitored_split(self):
    for record in self.epochs:
      for split in ("val", "test"):
        if split in record:
          return split
    return "val"

  def epoch_metric_names(self):
    names = set()
    for record in self.epochs:
      for split in ("val", "test"):
        names.update(record.get(split, {}))
    return sorted(names)

  def series(self, name):
    """(x, y, x_label) of a named curve, or None if the run has no values.

    Names: "train/loss" (per logged step, else per epoch), "train/lr",
    "val/<metric>" or "test/<metric>" (per epoch, at the epoch's last step),
    "model/<metric>" (per epoch), "evals/val/<metric>", "evals/test/<metric>"
    (every eval_every_steps steps).
    """
    section, _, metric = name.partition("/")
    xs, ys = [], []
    if section == "train" and metric in ("loss", "lr"):
      if self.steps:
        for r in self.steps:
          if metric in r:
            xs.append(r["step"])
            ys.append(r[metric])
      else:
        key = "train_loss" if metric == "loss" else "lr"
        for r in self.epochs:
          if key in r:
            xs.append(r["step"])
            ys.append(r[key])
    elif section == "evals":
      split, _, metric = metric.partition("/")
      for r in self.evals:
        value = r.get(split, {}).get(metric)
        if value is not None:
          xs.append(r["step"])
          ys.append(value)
    else:
      for r in self.epochs:
        value = r.get(section, {}).get(metric)
        if value is not None:
          xs.append(r["step"] if section != "model" else r["epoch"])
          ys.append(value)
    finite = [(x, y) for x, y in zip(xs, ys)
              if isinstance(y, (int, float)) and math.isfinite(y)]
    if not finite:
      return None
    return [x for x, _ in finite], [y for _, y in finite]

  def epochs_where_present(self, name):
    section, _, metric = name.partition("/")
    return [r["epoch"] for r in self.epochs
            if metric in r.get(section, {})]


def import_pyplot():
  try:
    import matplotlib
  except ImportError:
    sys.stderr.write(
        "plots: python3-matplotlib is not installed for %s (tools/bootstrap "
        "installs it; on Debian: apt-get install python3-matplotlib)\n" %
        sys.executable)
    sys.exit(EXIT_NO_MATPLOTLIB)
  matplotlib.use("Agg")  # files only: no display needed
  import matplotlib.pyplot as pyplot
  return pyplot


def save(pyplot, figure, path):
  figure.tight_layout()
  tmp = path + ".tmp"
  figure.savefig(tmp, dpi=100, format="png")
  pyplot.close(figure)
  os.replace(tmp, path)
  return path


# TensorBoard's default smoothing of a scalar: an exponential moving average
# with this weight on the past, debiased at the start.
SMOOTHING_WEIGHT = 0.6
# Fewer points than this (epoch means) are drawn as they are.
MIN_POINTS_TO_SMOOTH = 10


# Metrics that live in [0, 1]. Auto-scaled, two points 0.0002 apart fill
# the whole axis and read as a large change; their axis spans at least this.
BOUNDED_METRICS = ("accuracy", "precision", "recall", "f1", "auroc")
MIN_BOUNDED_SPAN = 0.1


# Any series whose values differ by less than this fraction of their size
# (a quantity held fixed, such as a normalised quine print's sum(theta^2),
# which moves in its seventh digit) is rounding, not change: auto-scaled it
# fills the axis with noise under identical tick labels. Its axis spans
# FLAT_SPAN of its size instead.
RELATIVE_FLAT_SPREAD = 1e-4
FLAT_SPAN = 0.02


def unexaggerated_limits(name, values):
  """(low, high) y limits that do not blow a tiny change up to the whole
  axis: a [0, 1] metric whose values span less than MIN_BOUNDED_SPAN gets
  that span around them, inside [0, 1]; any series flat to within
  RELATIVE_FLAT_SPREAD of its size gets FLAT_SPAN of its size. None: leave
  the axis to matplotlib."""
  if not values:
    return None
  low, high = min(values), max(values)
  if name.rpartition("/")[2] in BOUNDED_METRICS and 0 <= low and high <= 1:
    if high - low >= MIN_BOUNDED_SPAN:
      return None
    middle = (low + high) / 2
    low = min(max(0.0, middle - MIN_BOUNDED_SPAN / 2), 1 - MIN_BOUNDED_SPAN)
    margin = 0.02 * MIN_BOUNDED_SPAN
    return low - margin, low + MIN_BOUNDED_SPAN + margin
  size = max(abs(low), abs(high))
  if size > 0 and high - low < RELATIVE_FLAT_SPREAD * size:
    middle = (low + high) / 2
    return middle - FLAT_SPAN / 2 * size, middle + FLAT_SPAN / 2 * size
  return None


def keep_span(axes, name, values):
  limits = unexaggerated_limits(name, values)
  if limits:
    axes.set_ylim(*limits)


def smoothed(ys, weight=SMOOTHING_WEIGHT):
  """TensorBoard's smoothing: EMA of ys, divided by 1 - weight^n so that the
  first points are not pulled towards zero."""
  out, average = [], 0.0
  for n, y in enumerate(ys, start=1):
    average = weight * average + (1 - weight) * y
    out.append(average / (1 - weight ** n))
  return out
