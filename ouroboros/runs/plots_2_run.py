# One run's figures (`plots.py run`). Part 2 of plots.py: the build joins
# plots_1_read.py .. plots_4_main.py into one script (ouroboros/runs/BUILD),
# so this part uses the names the parts before it define.

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
