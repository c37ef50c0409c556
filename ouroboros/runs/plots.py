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
carries this file's text (ouroboros/BUILD: embed_text) and hands it to
`python3 -c`, so a run needs no file of the source tree.

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


def plot_run(run_dir):
  run = Run(run_dir)
  if not (run.epochs or run.steps or run.evals):
    raise BadInput("%s: no epochs.jsonl, steps.jsonl or evals.jsonl records to "
                   "plot" % run_dir)
  pyplot = import_pyplot()
  out = os.path.join(run_dir, "plots")
  os.makedirs(out, exist_ok=True)
  written = []
  split = run.monitored_split()

  def curve_figure(file_name, title, y_label, curves):
    curves = [(label, run.series(name), style) for label, name, style in curves]
    curves = [c for c in curves if c[1] is not None]
    if not curves:
      return
    values = [y for _, (_, ys), _ in curves for y in ys]
    figure, axes = pyplot.subplots(figsize=(7, 4.2))
    for index, (label, (xs, ys), style) in enumerate(curves):
      colour = "C%d" % index
      if style == "smooth" and len(ys) >= MIN_POINTS_TO_SMOOTH:
        # The raw curve faint behind its moving average, as TensorBoard.
        axes.plot(xs, ys, "-", color=colour, alpha=0.25, linewidth=1.0)
        axes.plot(xs, smoothed(ys), "-", color=colour, linewidth=1.6,
                  label="%s, smoothed (EMA %g)" % (label, SMOOTHING_WEIGHT))
        continue
      axes.plot(xs, ys, "-" if style == "smooth" else style, color=colour,
                label=label, linewidth=1.4, markersize=4)
    axes.set_xlabel("step")
    axes.set_ylabel(y_label)
    keep_span(axes, y_label, values)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    written.append(save(pyplot, figure, os.path.join(out, file_name)))

  name = run.config.get("run_name") or run.label
  curve_figure("loss.png", "%s: loss" % name, "loss", [
      ("train (per logged step)" if run.steps else "train (epoch mean)",
       "train/loss", "smooth"),
      ("%s (per epoch)" % split, "%s/loss" % split, "o-"),
      ("val (every eval step)", "evals/val/loss", "s--"),
  ])
  monitor = run.monitor()
  if monitor and monitor != "loss":
    curve_figure("%s.png" % monitor, "%s: %s" % (name, monitor), monitor, [
        ("%s (per epoch)" % split, "%s/%s" % (split, monitor), "o-"),
        ("val (every eval step)", "evals/val/%s" % monitor, "s--"),
        ("test (every eval step)", "evals/test/%s" % monitor, "^:"),
    ])
  curve_figure("lr.png", "%s: learning rate" % name, "learning rate",
               [("learning rate", "train/lr", "-")])

  spec = read_json(os.path.join(out, "figures.json"), {}) or {}
  for figure_spec in spec.get("figures", []):
    path = plot_family_figure(pyplot, run, out, figure_spec)
    if path:
      written.append(path)
  return written


def series_label(name):
  """"model/rho" -> "rho", "val/accuracy" -> "val accuracy (per epoch)",
  "evals/val/accuracy" -> "val accuracy (every N steps)"."""
  parts = name.split("/")
  if parts[0] == "model":
    return "/".join(parts[1:])
  if parts[0] == "evals":
    return "%s (every N steps)" % " ".join(parts[1:])
  if parts[0] in ("val", "test"):
    return "%s (per epoch)" % " ".join(parts)
  return " ".join(parts)


def plot_heatmap(pyplot, run, out, spec):
  """A row per epoch, a column per series, the value in each cell."""
  names = spec.get("series", [])
  epochs = sorted({r["epoch"] for r in run.epochs if "epoch" in r})
  by_epoch = {r["epoch"]: r for r in run.epochs if "epoch" in r}
  rows = []
  for epoch in epochs:
    row = []
    for name in names:
      section, _, metric = name.partition("/")
      value = by_epoch[epoch].get(section, {}).get(metric)
      ok = isinstance(value, (int, float)) and math.isfinite(value)
      row.append(value if ok else float("nan"))
    rows.append(row)
  if not rows or all(math.isnan(v) for row in rows for v in row):
    sys.stderr.write("plots: figure %s: none of %s has values\n" %
                     (spec.get("name"), ", ".join(names)))
    return None
  figure, axes = pyplot.subplots(
      figsize=(max(6.0, 1.2 + 0.62 * len(names)),
               max(3.2, 1.4 + 0.42 * len(rows))))
  image = axes.imshow(rows, cmap="viridis", aspect="auto", vmin=0, vmax=1,
                      interpolation="nearest")
  for i, row in enumerate(rows):
    for j, value in enumerate(row):
      if not math.isnan(value):
        axes.text(j, i, "%.2f" % value, ha="center", va="center",
                  fontsize=7, color="white" if value < 0.6 else "black")
  axes.set_xticks(range(len(names)))
  axes.set_xticklabels([series_label(n) for n in names], rotation=45,
                       ha="right", fontsize=8)
  axes.set_yticks(range(len(rows)))
  axes.set_yticklabels(["after %d" % e for e in epochs], fontsize=8)
  axes.set_title(spec.get("title") or spec.get("name"))
  figure.colorbar(image, ax=axes)
  return save(pyplot, figure, os.path.join(out, spec["name"] + ".png"))


def figure_curves(run, spec):
  """(x label, [(name, (xs, ys))], marks) of a model's own figure, on one x
  axis: epochs when every series is a model/ one (per epoch), else steps,
  with model/ values and the marks placed at the step their epoch ended
  (one figure may mix model/ series with val/ or evals/ ones, which are
  per step)."""
  present = [(name, run.series(name)) for name in spec.get("series", [])]
  present = [(name, s) for name, s in present if s is not None]
  marks = []
  if spec.get("mark_where_present"):
    marks = run.epochs_where_present(spec["mark_where_present"])
  if all(name.startswith("model/") for name, _ in present):
    return "epoch", present, marks
  step_of = {r["epoch"]: r["step"] for r in run.epochs
             if "epoch" in r and "step" in r}
  on_steps = []
  for name, (xs, ys) in present:
    if name.startswith("model/"):
      points = [(step_of[x], y) for x, y in zip(xs, ys) if x in step_of]
      xs, ys = [x for x, _ in points], [y for _, y in points]
    if xs:
      on_steps.append((name, (xs, ys)))
  return "step", on_steps, [step_of[m] for m in marks if m in step_of]


def plot_family_figure(pyplot, run, out, spec):
  """A model's own figure: one panel per series, stacked, sharing the x axis
  (or, with "heatmap", one matrix of epochs x series)."""
  if spec.get("heatmap"):
    return plot_heatmap(pyplot, run, out, spec)
  x_label, present, marks = figure_curves(run, spec)
  if not present:
    sys.stderr.write("plots: figure %s: none of %s has values\n" %
                     (spec.get("name"), ", ".join(spec.get("series", []))))
    return None
  figure, panels = pyplot.subplots(
      len(present), 1, figsize=(7, 2.4 * len(present) + 0.8), sharex=True,
      squeeze=False)
  for index, (name, (xs, ys)) in enumerate(present):
    axes = panels[index][0]
    axes.plot(xs, ys, "o-", linewidth=1.4, markersize=3)
    axes.set_ylabel(series_label(name))
    # A flat series stays linear: a log axis over a 2% span only repeats
    # one tick label.
    if (spec.get("log_scale") and all(y > 0 for y in ys) and
        unexaggerated_limits(name, list(ys)) is None):
      axes.set_yscale("log")
    chance = spec.get("chance", {}).get(name)
    if not isinstance(chance, (int, float)):
      chance = None
    keep_span(axes, name, list(ys) + ([chance] if chance is not None else []))
    if chance is not None:
      axes.axhline(chance, color="tab:gray", linestyle=":", linewidth=1.2,
                   label="chance %g" % chance)
      axes.legend(loc="best", fontsize="small")
    for i, mark in enumerate(marks):
      axes.axvline(mark, color="tab:red", alpha=0.35, linestyle="--",
                   label=(spec.get("mark_label") or "mark") if i == 0 else None)
    axes.grid(alpha=0.3)
    if marks and index == 0:
      axes.legend()
  panels[-1][0].set_xlabel(x_label)
  panels[0][0].set_title(spec.get("title") or spec.get("name"))
  return save(pyplot, figure, os.path.join(out, spec["name"] + ".png"))


def flatten_metrics(metrics):
  """metrics.json as "section/name" -> value, numbers and strings only."""
  flat = {}
  for key, value in metrics.items():
    if isinstance(value, dict):
      for name, inner in value.items():
        if not isinstance(inner, (dict, list)):
          flat["%s/%s" % (key, name)] = inner
    elif not isinstance(value, list):
      flat[key] = value
  flat.pop("final_checkpoint", None)
  return flat


# A run's name labels it; it is not a setting that could explain a result.
NOT_SETTINGS = ("run_name",)


def flatten_config(config, prefix=""):
  """config.json as "optim_config.lr" -> value; a list as its JSON text."""
  flat = {}
  for key, value in config.items():
    path = prefix + key
    if isinstance(value, dict):
      flat.update(flatten_config(value, path + "."))
    elif isinstance(value, list):
      flat[path] = json.dumps(value)
    else:
      flat[path] = value
  return flat


def config_differences(runs):
  """(paths, flats): the config paths whose values differ between the runs
  (a path one run lacks counts as differing), and each run's flat config."""
  flats = [flatten_config(run.config) for run in runs]
  paths = sorted({p for flat in flats for p in flat} - set(NOT_SETTINGS))
  differing = [p for p in paths
               if len({json.dumps(flat.get(p)) for flat in flats}) > 1]
  return differing, flats


def setting_cell(value):
  """A config value as the config says it: 1e-05, not 0.0000."""
  if isinstance(value, float):
    return "%g" % value
  return value


def mean_std_cell(values):
  """"0.8612 +- 0.0123" over the seeds (sample std); one value alone."""
  if len(values) == 1:
    return format_cell(values[0])
  mean = sum(values) / len(values)
  std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
  return "%.4f +- %.4f" % (mean, std)


def seed_groups(differing, flats):
  """(settings, groups): runs whose configs differ only in seed form a
  group (a list of run indices, in run order); settings are the differing
  paths that tell the groups apart. None when no group has two seeds."""
  if "seed" not in differing:
    return None
  settings = [p for p in differing if p != "seed"]
  groups = {}
  for index, flat in enumerate(flats):
    key = tuple(json.dumps(flat.get(p)) for p in settings)
    groups.setdefault(key, []).append(index)
  if max(len(members) for members in groups.values()) < 2:
    return None
  return settings, list(groups.values())


def seed_table(grouping, flats, metric_columns, rows):
  """(columns, rows) over seeds, or None (no group has two seeds): a row
  per seed_groups group with the settings that tell the groups apart, the
  seeds, n, and each metric's mean +- std."""
  if grouping is None:
    return None
  settings, groups = grouping
  metrics = [c for c in metric_columns if "/" in c or c == "last_train_loss"]
  out_rows = []
  for members in groups:
    first = flats[members[0]]
    row = [setting_cell(first.get(p, "")) for p in settings]
    row.append(", ".join(str(flats[i].get("seed", "")) for i in members))
    row.append(len(members))
    for metric in metrics:
      values = [rows[i][metric] for i in members
                if isinstance(rows[i].get(metric), (int, float))
                and not isinstance(rows[i].get(metric), bool)]
      row.append(mean_std_cell(values) if values else "")
    out_rows.append(row)
  return settings + ["seeds", "n"] + metrics, out_rows


def seed_band(series):
  """(xs, means, stds) over the steps every one of `series` ((xs, ys)
  pairs, one per seed) has; sample std."""
  common = sorted(set.intersection(*(set(xs) for xs, _ in series)))
  by_step = [dict(zip(xs, ys)) for xs, ys in series]
  means, stds = [], []
  for x in common:
    values = [points[x] for points in by_step]
    mean = sum(values) / len(values)
    means.append(mean)
    stds.append(math.sqrt(sum((v - mean) ** 2 for v in values) /
                          (len(values) - 1)))
  return common, means, stds


def format_cell(value):
  if isinstance(value, bool):
    return "yes" if value else "no"
  if isinstance(value, float):
    return "%.4f" % value if abs(value) < 1e5 else "%.4g" % value
  return str(value)


def run_row(run):
  """metrics.json flattened; for a run that did not finish (a trial stopped
  early, a run still going or killed), what its last epoch record says."""
  if run.metrics:
    flat = flatten_metrics(run.metrics)
    flat["finished"] = True
    return flat
  flat = {"finished": False}
  if run.epochs:
    last = run.epochs[-1]
    flat.update({"epochs": last.get("epoch"), "steps": last.get("step"),
                 "last_train_loss": last.get("train_loss")})
    for split in ("val", "test"):
      for name, value in last.get(split, {}).items():
        flat["%s/%s" % (split, name)] = value
  return flat


def metrics_table(runs, differing, configs):
  """(columns, rows, metric columns, flat metrics): one row per run, the
  config fields that differ between the runs, then its metrics.json
  flattened."""
  flats = [run_row(run) for run in runs]
  columns = sorted({key for flat in flats for key in flat},
                   key=lambda k: (k != "finished", k.count("/") > 0, k))
  rows = [[run.label] + [setting_cell(config.get(p, "")) for p in differing] +
          [flat.get(c, "") for c in columns]
          for run, config, flat in zip(runs, configs, flats)]
  return ["run"] + differing + columns, rows, columns, flats


def markdown_table(columns, rows):
  cells = [[format_cell(v) for v in row] for row in rows]
  widths = [max([len(c)] + [len(r[i]) for r in cells])
            for i, c in enumerate(columns)]
  line = lambda values: "| " + " | ".join(
      v.ljust(w) for v, w in zip(values, widths)) + " |"
  out = [line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
  out.extend(line(r) for r in cells)
  return "\n".join(out) + "\n"


def csv_text(columns, rows):
  text = io.StringIO()
  writer = csv.writer(text, lineterminator="\n")
  writer.writerow(columns)
  for row in rows:
    writer.writerow(row)
  return text.getvalue()


def compare(run_dirs, out, metric=None, mark_steps=(), title=None):
  runs = [Run(d) for d in run_dirs]
  for run in runs:
    if not run.has_records():
      raise BadInput("%s: no metrics.json or records (is it a run "
                     "directory?)" % run.dir)
  labels = [run.label for run in runs]
  if len(set(labels)) < len(labels):
    for run in runs:
      run.label = os.path.relpath(run.dir)
  os.makedirs(out, exist_ok=True)
  differing, configs = config_differences(runs)
  columns, rows, metric_columns, flat_metrics = metrics_table(
      runs, differing, configs)
  table = markdown_table(columns, rows)
  with open(os.path.join(out, "compare.md"), "w") as f:
    f.write(table)
  csv_string = csv_text(columns, rows)
  with open(os.path.join(out, "compare.csv"), "w") as f:
    f.write(csv_string)
  written = []
  grouping = seed_groups(differing, configs)
  seeds = seed_table(grouping, configs, metric_columns, flat_metrics)
  if seeds:
    seed_md = markdown_table(*seeds)
    table += "\nover seeds (runs whose configs differ only in seed):\n\n" + seed_md
    for name, text in (("compare_seeds.md", seed_md),
                       ("compare_seeds.csv", csv_text(*seeds))):
      with open(os.path.join(out, name), "w") as f:
        f.write(text)
      written.append(os.path.join(out, name))

  pyplot = import_pyplot()
  metric = metric or next((r.monitor() for r in runs if r.monitor()), None)
  curves = [("loss", "train loss", ["train/loss"])]
  if metric:
    # Validation first: what runs are chosen and compared on (the test set
    # only reports); every N steps when the runs have it.
    curves.append((metric, metric, ["evals/val/%s" % metric,
                                    "val/%s" % metric,
                                    "evals/test/%s" % metric,
                                    "test/%s" % metric]))
  # Several seeds of one config: one mean curve with a +- std band instead
  # of a curve per seed; the other runs as they are.
  plotted = grouping[1] if grouping else [[i] for i in range(len(runs))]
  for curve, y_label, candidates in curves:
    figure, axes = pyplot.subplots(figsize=(8, 4.8))
    drawn = 0
    source = None
    values = []
    for members in plotted:
      found = []
      for i in members:
        for name in candidates:
          series = runs[i].series(name)
          if series:
            found.append(series)
            source = source or name
            break
      if not found:
        continue
      colour = "C%d" % (drawn % 10)
      if len(found) == 1:
        xs, ys = found[0]
        axes.plot(xs, ys, "-", linewidth=1.3, label=runs[members[0]].label,
                  color=colour, marker="o" if len(xs) < 40 else None,
                  markersize=3)
        values.extend(ys)
      else:
        xs, means, stds = seed_band(found)
        if not xs:
          continue
        label = ", ".join("%s=%s" % (p.rpartition(".")[2],
                                     setting_cell(configs[members[0]].get(p)))
                          for p in grouping[0]) or "runs"
        axes.fill_between(xs, [m - s for m, s in zip(means, stds)],
                          [m + s for m, s in zip(means, stds)], color=colour,
                          alpha=0.2, linewidth=0)
        axes.plot(xs, means, "-", linewidth=1.6, color=colour,
                  label="%s (mean +- std, %d seeds)" % (label, len(found)))
        values.extend(m + s for m, s in zip(means, stds))
        values.extend(m - s for m, s in zip(means, stds))
      drawn += 1
    if not drawn:
      pyplot.close(figure)
      continue
    for i, step in enumerate(mark_steps):
      axes.axvline(step, color="tab:red", alpha=0.35, linestyle="--",
                   label="marked steps" if i == 0 else None)
    axes.set_xlabel("step")
    axes.set_ylabel(y_label)
    keep_span(axes, y_label, values)
    axes.set_title("%s%s (%s)" % (title + ": " if title else "", y_label,
                                  source))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", ncol=1 if drawn <= 8 else 2)
    written.append(save(pyplot, figure,
                        os.path.join(out, "compare_%s.png" % curve)))
  report = os.path.join(out, "report.html")
  with open(report, "w") as f:
    f.write(report_html(title, (columns, rows), seeds,
                        [w for w in written if w.endswith(".png")]))
  written.append(report)
  return table, csv_string, written


def html_table(columns, rows):
  def cell(tag, value):
    return "<%s>%s</%s>" % (tag, html.escape(str(value)), tag)
  head = "<tr>%s</tr>" % "".join(cell("th", c) for c in columns)
  body = "".join("<tr>%s</tr>" % "".join(cell("td", v) for v in row)
                 for row in rows)
  return "<table>\n<thead>%s</thead>\n<tbody>%s</tbody>\n</table>" % (head,
                                                                     body)


def report_html(title, runs_table, seeds_table, figures):
  """One self-contained page: the runs' table (settings that differ, then
  metrics), the seed groups' mean +- std, the figures inlined as data: URIs,
  so that it opens anywhere and can be mailed as one file."""
  parts = ["<!DOCTYPE html>", "<html lang=\"en\">", "<head>",
           "<meta charset=\"utf-8\">",
           "<title>%s</title>" % html.escape(title or "ouroboros: runs compared"),
           "<style>body{font-family:sans-serif;margin:2em}"
           "table{border-collapse:collapse;margin-bottom:2em}"
           "th,td{border:1px solid #bbb;padding:0.25em 0.6em;text-align:left}"
           "th{background:#eee}img{max-width:100%;display:block;"
           "margin-bottom:1.5em}</style>",
           "</head>", "<body>",
           "<h1>%s</h1>" % html.escape(title or "Runs compared"),
           "<h2>Runs</h2>", html_table(*runs_table)]
  if seeds_table:
    parts += ["<h2>Over seeds (runs whose configs differ only in seed): "
              "mean +- std</h2>", html_table(*seeds_table)]
  if figures:
    parts.append("<h2>Figures</h2>")
  for path in figures:
    with open(path, "rb") as f:
      data = base64.b64encode(f.read()).decode("ascii")
    parts.append("<img alt=\"%s\" src=\"data:image/png;base64,%s\">" %
                 (html.escape(os.path.basename(path)), data))
  parts += ["</body>", "</html>", ""]
  return "\n".join(parts)


def main(argv):
  parser = argparse.ArgumentParser(
      prog="plots", description=__doc__.split("\n\n")[0])
  commands = parser.add_subparsers(dest="command", required=True)
  run_parser = commands.add_parser("run", help="draw RUN_DIR/plots/")
  run_parser.add_argument("run_dir")
  compare_parser = commands.add_parser(
      "compare", help="several runs on one chart, metrics.json side by side")
  compare_parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
  compare_parser.add_argument("--out", default=".",
                              help="where compare_*.png, compare.md and "
                              "compare.csv go (default: .)")
  compare_parser.add_argument("--metric", help="the curve to compare besides "
                              "the loss (default: the monitored metric)")
  compare_parser.add_argument("--mark_steps", default="",
                              help="steps to mark with a vertical line, "
                              "comma-separated")
  compare_parser.add_argument("--title")
  compare_parser.add_argument("--quiet", action="store_true",
                              help="print only the files written")
  args = parser.parse_args(argv)
  try:
    if args.command == "run":
      for path in plot_run(args.run_dir):
        print(path)
    else:
      try:
        marks = [int(s) for s in args.mark_steps.split(",") if s.strip()]
      except ValueError:
        raise BadInput("--mark_steps: '%s' is not a comma-separated list of "
                       "steps" % args.mark_steps)
      table, csv_string, written = compare(args.run_dirs, args.out,
                                           args.metric, marks, args.title)
      if not args.quiet:
        print(table)
        print(csv_string)
      for path in written + [os.path.join(args.out, "compare.md"),
                             os.path.join(args.out, "compare.csv")]:
        print(path)
  except BadInput as e:
    sys.stderr.write("plots: error: %s\n" % e)
    return EXIT_BAD_INPUT
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
