# The command line of plots.py. Part 4: the build joins plots_1_read.py ..
# plots_4_main.py into one script (ouroboros/runs/BUILD).

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
