# Several runs side by side (`plots.py compare`). Part 3 of plots.py: the
# build joins plots_1_read.py .. plots_4_main.py into one script
# (ouroboros/runs/BUILD), so this part uses the names the parts before it
# define.

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
