"""The plots a run draws when it ends, a tune's comparison of its trials, and
tools/compare_runs: the PNGs are decoded (PIL, which python3-matplotlib
brings) and must hold drawn curves of the expected colours across the plot,
not just a valid header; the tables must carry metrics.json's numbers."""

import csv
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import unittest

from PIL import Image

WORKSPACE = os.path.join(os.environ["TEST_SRCDIR"], "ouroboros")
MAIN = os.path.join(WORKSPACE, "ouroboros/main")
COMPARE_RUNS = os.path.join(WORKSPACE, "tools/compare_runs")
PLOTS_PY = os.path.join(WORKSPACE, "ouroboros/runs/plots.py")
TINY_MLP = os.path.join(WORKSPACE, "tests/testdata/tiny_mlp.json")
SCRATCH = os.environ["TEST_TMPDIR"]

# matplotlib's first colours: the first, second and third curve of a chart.
BLUE = (31, 119, 180)
ORANGE = (255, 127, 14)
GREEN = (44, 160, 44)
# BLUE at alpha 0.25 on white: a raw curve behind its moving average.
FAINT_BLUE = (199, 221, 236)
# viridis at 1.0 and at 0.5: a heatmap's cells (accuracy 1, accuracy 0.5).
VIRIDIS_TOP = (253, 231, 37)
VIRIDIS_MIDDLE = (33, 145, 140)
# tab:red at alpha 0.35 on white: the dashed marks (regenerations, jumps).
MARK_PINK = (241, 179, 180)


def run_main(*args, env=None):
  result = subprocess.run([MAIN, "--threads=1"] + list(args),
                          capture_output=True, text=True, cwd=SCRATCH,
                          env=dict(os.environ, **(env or {})))
  return result.returncode, result.stdout + result.stderr


def train_tiny(name, *args, env=None):
  run_dir = os.path.join(SCRATCH, name)
  shutil.rmtree(run_dir, ignore_errors=True)
  code, output = run_main("--config=" + TINY_MLP, "--run_dir=" + run_dir,
                          *args, env=env)
  assert code == 0, output
  return run_dir, output


def colour_extent(path, rgb, tolerance=30):
  """(pixels of that colour, fraction of the image width they span)."""
  with Image.open(path) as png:
    image = png.convert("RGB")
  width, height = image.size
  pixels = image.load()
  xs = [x for x in range(width) for y in range(height)
        if all(abs(a - b) <= tolerance for a, b in zip(pixels[x, y], rgb))]
  if not xs:
    return 0, 0.0
  return len(xs), (max(xs) - min(xs)) / width


class RunPlotsTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    cls.run_dir, cls.output = train_tiny("run")

  def assertCurve(self, png, rgb, what, min_span=0.5):
    count, span = colour_extent(png, rgb)
    # A legend swatch is ~40 pixels in the corner; a curve crosses the axes.
    self.assertGreater(count, 150, "%s: %s has no curve" % (png, what))
    self.assertGreater(span, min_span, "%s: %s spans %.2f of the width" %
                       (png, what, span))

  def test_draws_loss_metric_and_learning_rate(self):
    plots = os.path.join(self.run_dir, "plots")
    for name in ("loss.png", "accuracy.png", "lr.png"):
      path = os.path.join(plots, name)
      self.assertTrue(os.path.isfile(path), name + "\n" + self.output)
      with Image.open(path) as image:
        self.assertEqual(image.format, "PNG")
        image.verify()  # the PNG's chunks and CRCs
    self.assertCurve(os.path.join(plots, "loss.png"), BLUE, "train loss")
    # Validation: once per epoch, from step 12 of 24 on.
    self.assertCurve(os.path.join(plots, "loss.png"), ORANGE, "val loss",
                     min_span=0.35)
    self.assertCurve(os.path.join(plots, "accuracy.png"), BLUE, "val accuracy")
    self.assertCurve(os.path.join(plots, "lr.png"), BLUE, "learning rate")
    self.assertIn("plots: the run's figures, 3 files in", self.output)

  def test_step_log_feeds_the_loss_curve(self):
    with open(os.path.join(self.run_dir, "steps.jsonl")) as f:
      records = [json.loads(line) for line in f]
    # tests/testdata/tiny_mlp.json: 24 steps, log_every_steps 4, lr 0.01.
    self.assertEqual([r["step"] for r in records], [4, 8, 12, 16, 20, 24])
    self.assertEqual({r["lr"] for r in records}, {0.01})
    self.assertEqual([r["epoch"] for r in records], [1, 1, 1, 2, 2, 2])
    with open(os.path.join(self.run_dir, "epochs.jsonl")) as f:
      self.assertEqual([json.loads(line)["lr"] for line in f], [0.01, 0.01])

  def test_skip_plots_draws_nothing(self):
    run_dir, _ = train_tiny("skipped", "--set=run_config.skip_plots=true")
    self.assertFalse(os.path.exists(os.path.join(run_dir, "plots")))

  def test_without_matplotlib_the_run_still_succeeds(self):
    run_dir, output = train_tiny(
        "no_python", env={"OUROBOROS_PYTHON": "/nonexistent/python3"})
    self.assertIn("plots: the run's figures not drawn", output)
    self.assertIn("/nonexistent/python3", output)
    self.assertTrue(os.path.isfile(os.path.join(run_dir, "metrics.json")))


class FamilyFigureTest(unittest.TestCase):

  def test_quine_marks_its_regenerations(self):
    run_dir = os.path.join(SCRATCH, "quine")
    code, output = run_main("--model=quine", "--run_dir=" + run_dir,
                            "--set=run_config.epochs=3",
                            "--set=model_config.hidden_sizes=[16]")
    self.assertEqual(code, 0, output)
    png = os.path.join(run_dir, "plots", "quine.png")
    self.assertTrue(os.path.isfile(png), output)
    count, span = colour_extent(png, BLUE)
    self.assertGreater(count, 300, "no L_SR / rho / sum(theta^2) curves")
    self.assertGreater(span, 0.5)
    marks, _ = colour_extent(png, MARK_PINK, tolerance=12)
    # Three regenerations, dashed, down three panels.
    self.assertGreater(marks, 200, "no regeneration marks")


  def test_continual_draws_its_accuracy_matrix_as_a_heatmap(self):
    run_dir = os.path.join(SCRATCH, "continual")
    code, output = run_main(
        "--config=" + os.path.join(WORKSPACE, "tests/testdata/tiny_continual.json"),
        "--run_dir=" + run_dir)
    self.assertEqual(code, 0, output)
    png = os.path.join(run_dir, "plots", "continual_matrix.png")
    self.assertTrue(os.path.isfile(png), output)
    # viridis at the top of the scale: the cells of tasks just learned
    # (accuracy ~1) are yellow; a task forgotten by fine-tuning (~0.5)
    # teal.
    yellow, _ = colour_extent(png, VIRIDIS_TOP, tolerance=40)
    self.assertGreater(yellow, 10000, "no cells near accuracy 1")
    teal, _ = colour_extent(png, VIRIDIS_MIDDLE, tolerance=40)
    self.assertGreater(teal, 5000, "no cell near accuracy 0.5")


def load_plots_module():
  spec = importlib.util.spec_from_file_location("plots", PLOTS_PY)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


class SmoothedLossTest(unittest.TestCase):

  def test_moving_average_is_tensorboards(self):
    plots = load_plots_module()
    # Debiased: a constant stays itself from the first point on.
    self.assertEqual(plots.smoothed([2.0, 2.0, 2.0]), [2.0, 2.0, 2.0])
    # 0.6 on the past: (0.4 * 10) / (1 - 0.6^2) at the second point.
    first, second = plots.smoothed([0.0, 10.0])
    self.assertEqual(first, 0.0)
    self.assertAlmostEqual(second, 4.0 / 0.64)

  def test_noisy_train_loss_is_drawn_smoothed_over_raw(self):
    run_dir = os.path.join(SCRATCH, "noisy")
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "steps.jsonl"), "w") as f:
      for step in range(1, 61):
        loss = 2.0 / step ** 0.5 + (0.8 if step % 2 else 0.0)
        f.write(json.dumps({"step": step, "epoch": 1, "loss": loss,
                            "lr": 0.01}) + "\n")
    result = subprocess.run(["/usr/bin/python3", PLOTS_PY, "run", run_dir],
                            capture_output=True, text=True)
    self.assertEqual(result.returncode, 0, result.stderr)
    png = os.path.join(run_dir, "plots", "loss.png")
    counts = {}
    for colour, what in ((BLUE, "the moving average"),
                         (FAINT_BLUE, "the raw curve behind it")):
      counts[what], span = colour_extent(png, colour, tolerance=12)
      self.assertGreater(counts[what], 150, what)
      self.assertGreater(span, 0.5, what)
    # The raw loss zigzags by 0.8 at every step: drawn faint, it covers more
    # pixels than the smoothed line in front of it (measured: 4,535 against
    # 2,156). Drawn solid and unsmoothed, only its anti-aliased edges are
    # faint (1,111 against 6,004 solid).
    self.assertGreater(counts["the raw curve behind it"],
                       counts["the moving average"])


class FamilyFigureAxisTest(unittest.TestCase):
  """A model's figure may mix model/ series (per epoch) with val/ ones (per
  step): they must share one x axis, not an epoch axis with the step
  curve squeezed onto it or the other way round."""

  @classmethod
  def setUpClass(cls):
    cls.plots = load_plots_module()
    cls.run_dir = os.path.join(SCRATCH, "mixed_axes")
    shutil.rmtree(cls.run_dir, ignore_errors=True)
    os.makedirs(cls.run_dir)
    with open(os.path.join(cls.run_dir, "epochs.jsonl"), "w") as f:
      for epoch, step in ((1, 100), (2, 200), (3, 300)):
        record = {"epoch": epoch, "step": step, "train_loss": 1.0 / epoch,
                  "val": {"accuracy": 0.5 + 0.1 * epoch},
                  "model": {"rho": 0.3 / epoch}}
        if epoch == 2:
          record["model"]["regenerated"] = 1
        f.write(json.dumps(record) + "\n")

  def test_mixed_figure_is_drawn_against_steps(self):
    run = self.plots.Run(self.run_dir)
    spec = {"name": "mixed", "series": ["model/rho", "val/accuracy"],
            "mark_where_present": "model/regenerated"}
    os.makedirs(os.path.join(self.run_dir, "plots"), exist_ok=True)
    with open(os.path.join(self.run_dir, "plots", "figures.json"), "w") as f:
      json.dump({"figures": [spec]}, f)
    x_label, curves, marks = self.plots.figure_curves(run, spec)
    self.assertEqual(x_label, "step")
    self.assertEqual(dict(curves)["model/rho"][0], [100, 200, 300])
    self.assertEqual(dict(curves)["val/accuracy"][0], [100, 200, 300])
    self.assertEqual(marks, [200])
    # And the PNG is drawn.
    result = subprocess.run(["/usr/bin/python3", PLOTS_PY, "run",
                             self.run_dir], capture_output=True, text=True)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn(os.path.join(self.run_dir, "plots", "mixed.png"),
                  result.stdout)

  def test_model_only_figure_stays_per_epoch(self):
    run = self.plots.Run(self.run_dir)
    x_label, curves, marks = self.plots.figure_curves(
        run, {"name": "rho", "series": ["model/rho"],
              "mark_where_present": "model/regenerated"})
    self.assertEqual(x_label, "epoch")
    self.assertEqual(dict(curves)["model/rho"][0], [1, 2, 3])
    self.assertEqual(marks, [2])


def most_grey_in_one_row(path):
  """The largest number of mid-grey pixels (tab:gray, anti-aliased) in one
  row of the image: a horizontal dotted line has hundreds, text a few
  dozen."""
  with Image.open(path) as png:
    image = png.convert("RGB")
  width, height = image.size
  pixels = image.load()
  return max(
      sum(1 for x in range(width)
          if max(pixels[x, y]) - min(pixels[x, y]) < 8 and
          60 < pixels[x, y][0] < 200)
      for y in range(height))


class AxisRangeTest(unittest.TestCase):

  def test_tiny_change_of_a_bounded_metric_is_not_blown_up(self):
    plots = load_plots_module()
    low, high = plots.unexaggerated_limits("val/accuracy", [0.8610, 0.8612])
    self.assertGreaterEqual(high - low, 0.1)
    self.assertLess(low, 0.8610)
    self.assertGreater(high, 0.8612)
    # Kept inside [0, 1] (up to the margin) at either end.
    low, high = plots.unexaggerated_limits("accuracy", [0.99, 0.995])
    self.assertAlmostEqual(high, 1.002)
    low, high = plots.unexaggerated_limits("test/f1", [0.0, 0.01])
    self.assertAlmostEqual(low, -0.002)

  def test_other_curves_keep_matplotlibs_range(self):
    plots = load_plots_module()
    # A wide spread, an unbounded metric, values outside [0, 1].
    self.assertIsNone(plots.unexaggerated_limits("accuracy", [0.3, 0.7]))
    self.assertIsNone(plots.unexaggerated_limits("val/loss", [0.40, 0.41]))
    self.assertIsNone(plots.unexaggerated_limits("model/rho", [0.5, 0.51]))
    self.assertIsNone(plots.unexaggerated_limits("accuracy", [1.2, 1.21]))
    self.assertIsNone(plots.unexaggerated_limits("accuracy", []))
    self.assertIsNone(plots.unexaggerated_limits("model/weight_sq", [0.0, 0.0]))

  def test_a_series_flat_to_rounding_spans_two_percent_of_its_size(self):
    plots = load_plots_module()
    # A normalised quine print's sum(theta^2): 202.806 in its 7th digit.
    values = [202.8060012, 202.8060004, 202.8060019]
    low, high = plots.unexaggerated_limits("model/regenerated_weight_sq",
                                           values)
    self.assertAlmostEqual(high - low, 0.02 * max(values))
    self.assertLess(low, min(values))
    self.assertGreater(high, max(values))
    low, high = plots.unexaggerated_limits("model/x", [-4.0, -4.0])
    self.assertAlmostEqual(low, -4.04)
    self.assertAlmostEqual(high, -3.96)
    # A real change of 0.1% is left to matplotlib.
    self.assertIsNone(plots.unexaggerated_limits("model/x", [100.0, 100.1]))


class ChanceLineTest(unittest.TestCase):

  def draw(self, name, spec):
    run_dir = os.path.join(SCRATCH, name)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(os.path.join(run_dir, "plots"))
    with open(os.path.join(run_dir, "epochs.jsonl"), "w") as f:
      for epoch in range(1, 6):
        f.write(json.dumps({"epoch": epoch, "step": 100 * epoch,
                            "val": {"accuracy": 0.2 + 0.1 * epoch}}) + "\n")
    with open(os.path.join(run_dir, "plots", "figures.json"), "w") as f:
      json.dump({"figures": [spec]}, f)
    result = subprocess.run(["/usr/bin/python3", PLOTS_PY, "run", run_dir],
                            capture_output=True, text=True)
    self.assertEqual(result.returncode, 0, result.stderr)
    return os.path.join(run_dir, "plots", spec["name"] + ".png")

  def test_declared_chance_is_a_line_across_the_panel(self):
    # Measured: 272 grey pixels in the line's row against 75 at most in any
    # row without it.
    with_line = self.draw("chance", {"name": "fig",
                                     "series": ["val/accuracy"],
                                     "chance": {"val/accuracy": 0.2}})
    without = self.draw("no_chance", {"name": "fig",
                                      "series": ["val/accuracy"]})
    self.assertGreater(most_grey_in_one_row(with_line), 200)
    self.assertLess(most_grey_in_one_row(without), 150)


class CompareRunsTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    cls.runs = [train_tiny("compare_a")[0],
                train_tiny("compare_b", "--seed=6",
                           "--set=optim_config.lr=0.003")[0]]
    # compare_b's config but for its seed.
    cls.seed_twin = train_tiny("compare_c", "--seed=7",
                               "--set=optim_config.lr=0.003")[0]

  def test_table_csv_and_chart(self):
    out = os.path.join(SCRATCH, "compared")
    result = subprocess.run([COMPARE_RUNS, "--out", out] + self.runs,
                            capture_output=True, text=True)
    self.assertEqual(result.returncode, 0, result.stderr)
    metrics = []
    for run_dir in self.runs:
      with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics.append(json.load(f))
    # The Markdown table on stdout: a row per run with its test accuracy.
    for run_dir, m in zip(self.runs, metrics):
      row = next(line for line in result.stdout.splitlines()
                 if line.startswith("| " + os.path.basename(run_dir) + " "))
      self.assertIn(" %.4f " % m["test"]["accuracy"], row)
    # The CSV file: exactly metrics.json's numbers.
    with open(os.path.join(out, "compare.csv")) as f:
      rows = list(csv.DictReader(f))
    self.assertEqual([r["run"] for r in rows],
                     [os.path.basename(d) for d in self.runs])
    for row, m in zip(rows, metrics):
      self.assertEqual(float(row["test/accuracy"]), m["test"]["accuracy"])
      self.assertEqual(float(row["val/loss"]), m["val"]["loss"])
      self.assertEqual(int(row["steps"]), m["steps"])
    self.assertIn(csv_header_of(out), result.stdout)
    chart = os.path.join(out, "compare_accuracy.png")
    for colour, what in ((BLUE, "first run"), (ORANGE, "second run")):
      count, span = colour_extent(chart, colour)
      self.assertGreater(count, 150, what)
      self.assertGreater(span, 0.5, what)

  def test_settings_that_differ_are_columns(self):
    out = os.path.join(SCRATCH, "compared_settings")
    result = subprocess.run([COMPARE_RUNS, "--out", out] + self.runs,
                            capture_output=True, text=True)
    self.assertEqual(result.returncode, 0, result.stderr)
    with open(os.path.join(out, "compare.csv")) as f:
      reader = csv.DictReader(f)
      rows = list(reader)
      columns = reader.fieldnames
    # Exactly the fields the two configs disagree on, by their paths,
    # right after the run's name; the run's own name is not a setting.
    self.assertEqual(columns[:3], ["run", "optim_config.lr", "seed"])
    with open(os.path.join(self.runs[0], "config.json")) as f:
      first = json.load(f)
    self.assertEqual(rows[0]["optim_config.lr"],
                     "%g" % first["optim_config"]["lr"])
    self.assertEqual(rows[1]["optim_config.lr"], "0.003")
    self.assertEqual([r["seed"] for r in rows], [str(first["seed"]), "6"])
    self.assertNotIn("run_name", columns)
    # No two runs share their settings but for the seed: no seed table.
    self.assertFalse(os.path.exists(os.path.join(out, "compare_seeds.csv")))
    self.assertNotIn("over seeds", result.stdout)

  def test_runs_differing_only_in_seed_are_grouped(self):
    out = os.path.join(SCRATCH, "compared_seeds")
    runs = self.runs + [self.seed_twin]
    result = subprocess.run([COMPARE_RUNS, "--out", out] + runs,
                            capture_output=True, text=True)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn("over seeds", result.stdout)
    with open(os.path.join(out, "compare_seeds.csv")) as f:
      groups = {r["optim_config.lr"]: r for r in csv.DictReader(f)}
    self.assertEqual(groups["0.003"]["seeds"], "6, 7")
    self.assertEqual(groups["0.003"]["n"], "2")
    self.assertEqual(groups["%g" % self.lr_of(self.runs[0])]["n"], "1")
    accuracies = []
    for run_dir in runs[1:]:
      with open(os.path.join(run_dir, "metrics.json")) as f:
        accuracies.append(json.load(f)["test"]["accuracy"])
    mean = sum(accuracies) / 2
    std = abs(accuracies[0] - accuracies[1]) / 2 ** 0.5
    self.assertEqual(groups["0.003"]["test/accuracy"],
                     "%.4f +- %.4f" % (mean, std))
    # The chart: compare_a's own curve (blue) and one mean curve for the two
    # seeds (orange), not a third curve (green) per seed.
    chart = os.path.join(out, "compare_accuracy.png")
    for colour, what in ((BLUE, "compare_a"), (ORANGE, "the seeds' mean")):
      count, span = colour_extent(chart, colour)
      self.assertGreater(count, 150, what)
      self.assertGreater(span, 0.5, what)
    self.assertEqual(colour_extent(chart, GREEN)[0], 0)

  def test_report_html_loads_in_a_real_browser(self):
    """report.html is one self-contained page: Debian's chromium, headless,
    loads it without an error, finds the runs' table and the seed table,
    and draws the inlined figures (their curves' colours in a screenshot)."""
    out = os.path.join(SCRATCH, "compared_report")
    runs = self.runs + [self.seed_twin]
    result = subprocess.run([COMPARE_RUNS, "--out", out] + runs,
                            capture_output=True, text=True)
    self.assertEqual(result.returncode, 0, result.stderr)
    report = os.path.join(out, "report.html")
    with open(report) as f:
      text = f.read()
    # Self-contained: nothing fetched, every figure inlined.
    self.assertNotRegex(text, r'src="(?!data:image/png;base64,)')
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--hide-scrollbars",
               "--enable-logging=stderr", "--v=0",
               "--user-data-dir=" + os.path.join(SCRATCH, "chromium")]
    dom = subprocess.run(browser + ["--dump-dom", "file://" + report],
                         capture_output=True, text=True, timeout=120)
    self.assertEqual(dom.returncode, 0, dom.stderr[-2000:])
    # The page's own errors (a script error, a resource that failed to
    # load) reach the log as console messages; the browser's complaints
    # about a missing D-Bus do not count.
    self.assertNotRegex(dom.stderr, r"CONSOLE|Uncaught|Failed to load resource")
    tables = re.findall(r"<table>.*?</table>", dom.stdout, re.S)
    self.assertEqual(len(tables), 2)  # the runs, the seed groups
    self.assertEqual(tables[0].count("<tr>"), 1 + len(runs))
    for run_dir in runs:
      self.assertIn(">%s<" % os.path.basename(run_dir), tables[0])
    self.assertIn(">6, 7<", tables[1])
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,',
                        dom.stdout)
    self.assertEqual(images, ["compare_loss.png", "compare_accuracy.png"])
    shot = os.path.join(SCRATCH, "report.png")
    drawn = subprocess.run(browser + ["--window-size=1000,2600",
                                      "--screenshot=" + shot,
                                      "file://" + report],
                           capture_output=True, text=True, timeout=120)
    self.assertEqual(drawn.returncode, 0, drawn.stderr[-2000:])
    # The figures are drawn: compare_a's curve (blue) and the seeds' mean
    # (orange) in the page as the browser renders it.
    for colour, what in ((BLUE, "compare_a"), (ORANGE, "the seeds' mean")):
      self.assertGreater(colour_extent(shot, colour)[0], 300, what)

  def test_seed_band_is_mean_and_std_over_common_steps(self):
    plots = load_plots_module()
    xs, means, stds = plots.seed_band([([1, 2, 3], [0.2, 0.4, 0.6]),
                                       ([2, 3], [0.6, 0.8])])
    self.assertEqual(xs, [2, 3])
    for got, want in zip(means, [0.5, 0.7]):
      self.assertAlmostEqual(got, want)
    for got in stds:
      self.assertAlmostEqual(got, 0.2 / 2 ** 0.5)

  @staticmethod
  def lr_of(run_dir):
    with open(os.path.join(run_dir, "config.json")) as f:
      return json.load(f)["optim_config"]["lr"]

  def test_not_a_run_directory_is_bad_input(self):
    empty = os.path.join(SCRATCH, "not_a_run")
    os.makedirs(empty, exist_ok=True)
    for bad in (os.path.join(SCRATCH, "missing"), empty):
      result = subprocess.run([COMPARE_RUNS, bad], capture_output=True,
                              text=True)
      self.assertEqual(result.returncode, 2, result.stderr)
      self.assertIn(bad, result.stderr)
      self.assertNotIn("Traceback", result.stderr)


def csv_header_of(out):
  with open(os.path.join(out, "compare.csv")) as f:
    return f.readline().strip()


class TuneComparisonTest(unittest.TestCase):

  def test_tune_draws_its_trials_on_one_chart(self):
    with open(TINY_MLP) as f:
      config = json.load(f)
    config["pipeline"] = "tune"
    config["pipeline_config"] = {
        "search": "grid", "metric": "accuracy", "max_concurrent": 2,
        "trial_epochs": 2, "skip_final_run": True,
        "space": {"optim_config.lr": {"grid": [0.001, 0.01, 0.05]}}}
    path = os.path.join(SCRATCH, "tune.json")
    with open(path, "w") as f:
      json.dump(config, f)
    run_dir = os.path.join(SCRATCH, "tune")
    code, output = run_main("--config=" + path, "--run_dir=" + run_dir)
    self.assertEqual(code, 0, output)
    plots = os.path.join(run_dir, "plots")
    with open(os.path.join(plots, "compare.csv")) as f:
      self.assertEqual([r["run"] for r in csv.DictReader(f)],
                       ["trial-000", "trial-001", "trial-002"])
    for colour in (BLUE, ORANGE, GREEN):
      count, span = colour_extent(os.path.join(plots, "compare_accuracy.png"),
                                  colour)
      self.assertGreater(count, 100, output)
    self.assertIn("plots: the trials' comparison, 4 files in", output)


if __name__ == "__main__":
  unittest.main()
