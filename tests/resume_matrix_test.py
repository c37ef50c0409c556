#!/usr/bin/env python3
"""The resume matrix: every run stopped from outside resumes exactly.

For every model main has registered (its embedded default config, shortened
so that the matrix stays within minutes), the auxiliary quine's config, the
introspective demo, a tune and a parallel job: one uninterrupted run, then
the same run SIGKILLed from outside at random moments (at least two kills,
the whole process group, as a crash or the OOM killer would), resumed each
time with --resume=auto, and once more stopped by SIGTERM at a random moment
of its training and resumed. Each stop comes a random delay after a step
checkpoint the attempt wrote (up to the uninterrupted run's typical interval
between checkpoints, or for a SIGKILL its final phase after the last one),
so every attempt makes progress and the stops fall anywhere in the run. The final weights (every checkpoints/ folder's newest
step-*.weights.pt, tensor by tensor, through Python's torch.load) and every
metrics.json and family result file must equal the uninterrupted run's bit
for bit; a difference names the first differing tensor or field. Each
model's case also runs its --print_config output with --config and
compares it with the uninterrupted run the same way.

A new family is in the matrix without anyone adding it: the models come from
`main --list_plugins`. Its default config is shortened by the generic
settings below unless SHORTENED names it.

  python3 tests/resume_matrix_test.py MAIN [CASE ...]
  RESUME_MATRIX_SEED=N repeats a run's kill moments (the seed is printed).
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import torch

MAIN = os.path.abspath(sys.argv[1])
ONLY = set(sys.argv[2:])
SEED = int(os.environ.get("RESUME_MATRIX_SEED", random.randrange(1 << 30)))
ROOT = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp()
RNG = random.Random(SEED)

# Checkpoints often enough that a kill usually lands between two of them.
GENERIC = [
    "--set=run_config.epochs=2",
    "--set=run_config.max_steps=30",
    "--set=run_config.checkpoint_every_steps=4",
    "--set=data_config.data_subset=0.03",
]
SHORTENED = {
    "mlp": GENERIC,
    "hypernetwork": GENERIC,
    # 20,100 coordinates an epoch at the default widths: a narrower quine
    # (the same family and loss) regenerates after each of its 6 epochs; so
    # small a one may shrink to the zero quine, which is allowed here (the
    # matrix checks the resume, not the quine).
    "quine": [
        "--set=model_config.allow_zero_quine=true",
        "--set=model_config.hidden_sizes=[20]",
        "--set=model_config.coordinate_embedding=20",
        "--set=run_config.epochs=6",
        "--set=run_config.batch_size=4",
        "--set=run_config.checkpoint_every_steps=10",
    ],
    "srwm": [
        "--set=data_config.source_config.train_episodes_per_epoch=64",
        "--set=data_config.source_config.eval_episodes=16",
        "--set=run_config.epochs=3",
        "--set=run_config.checkpoint_every_steps=3",
    ],
}
# Configs beside the models' defaults (paths relative to the workspace).
EXTRA = {
    "quine_aux": [
        "--config=configs/quine_aux_mnist_digits.json",
        "--set=data_config.data_subset=0.05",
        "--set=model_config.coordinates_per_step=50",
        "--set=run_config.epochs=2",
        "--set=run_config.checkpoint_every_steps=5",
    ],
    "tune": [
        "--config=tests/testdata/tiny_tune.json",
    ],
    "parallel": [
        "--config=tests/testdata/tiny_parallel.json",
    ],
    # A continual run (model continual; its default config is a parallel
    # demo): two tasks of 5% of the digits, a few steps each, so that the
    # task switch (the regulariser's targets, the accuracy matrix) falls
    # inside the run. A chunked hypernetwork: the full one's 9M parameters
    # make every checkpoint 100 MB (its resume is also checked in
    # continual_test).
    "continual": [
        "--config=configs/continual_permuted_digits.json",
        "--set=model_config.chunk_size=2987",
        "--set=model_config.hnet_hidden_sizes=[25]",
        "--set=data_config.source_config.tasks=2",
        "--set=data_config.data_subset=0.05",
        "--set=run_config.epochs=2",
        "--set=run_config.checkpoint_every_steps=2",
    ],
    # The introspective demo (a record run, I trained in-process, target
    # runs plain and with jumps), resumed as a whole.
    "introspective_demo": [
        "--config=tests/testdata/tiny_demo.json",
    ],
}
# Keys whose values are clocks (or ratios of clocks), not results.
VOLATILE = {"final_checkpoint", "seconds", "train_seconds", "wall_seconds",
            "elapsed_seconds", "time", "started", "finished"}


def volatile(key):
    return (key in VOLATILE or "seconds" in key or
            key.startswith("speedup_wall"))
RESULT_FILES = ("metrics.json", "fewshot.json", "results.json",
                "continual.json")


def log(message):
    print(message, flush=True)


def run(args, run_dir, stop=None, delay=0.0):
    """main ARGS in its own process group. With `stop`: that signal goes to
    the group `delay` s after a step checkpoint new to this attempt appeared
    (so every stop follows one, and the run makes progress). Returns (exit
    code, seconds, output, the moments new step checkpoints appeared)."""
    out_path = run_dir + ".out"
    checkpoint_times = []
    seen = step_checkpoints(run_dir)
    with open(out_path, "a") as out:
        start = time.monotonic()
        process = subprocess.Popen(
            [MAIN] + args + ["--run_dir=" + run_dir, "--threads=1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        stopped = False
        while process.poll() is None:
            elapsed = time.monotonic() - start
            found = step_checkpoints(run_dir)
            if found - seen:
                seen |= found
                checkpoint_times.append(elapsed)
            if (stop is not None and not stopped and checkpoint_times and
                    elapsed >= checkpoint_times[0] + delay):
                os.killpg(process.pid, stop)
                stopped = True
            if elapsed > 600:
                os.killpg(process.pid, signal.SIGKILL)
            time.sleep(0.01)
        code = process.returncode
        seconds = time.monotonic() - start
    # Children of a killed group (tune trials) are gone with it; wait until
    # none is left holding a lock.
    for _ in range(100):
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    with open(out_path) as f:
        return code, seconds, f.read(), checkpoint_times


def newest_weights(checkpoints):
    names = sorted(n for n in os.listdir(checkpoints)
                   if n.startswith("step-") and n.endswith(".weights.pt"))
    return names[-1] if names else None


def artifacts(run_dir):
    """relative path -> kind, for the files that must match."""
    found = {}
    for folder, dirs, files in os.walk(run_dir):
        dirs.sort()
        rel = os.path.relpath(folder, run_dir)
        for name in files:
            if name in RESULT_FILES:
                found[os.path.normpath(os.path.join(rel, name))] = "json"
        if os.path.basename(folder) == "checkpoints":
            newest = newest_weights(folder)
            if newest:
                found[os.path.normpath(os.path.join(rel, newest))] = "weights"
    return found


def first_json_difference(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if volatile(key):
                continue
            where = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                return f"{where}: only in {'cut' if key in b else 'whole'}"
            found = first_json_difference(a[key], b[key], where)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} against {len(b)} entries"
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_json_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} against {b!r}"


def compare(name, whole, cut):
    expected = artifacts(whole)
    if not any(kind == "weights" for kind in expected.values()):
        return f"{name}: the uninterrupted run left no weights in {whole}"
    got = artifacts(cut)
    for rel, kind in sorted(expected.items()):
        if rel not in got:
            return f"{name}: {rel} is missing after the resume"
        a, b = os.path.join(whole, rel), os.path.join(cut, rel)
        if kind == "json":
            with open(a) as fa, open(b) as fb:
                difference = first_json_difference(json.load(fa),
                                                   json.load(fb))
            if difference:
                return f"{name}: {rel}: first differing field {difference}"
        else:
            wa, wb = torch.load(a), torch.load(b)
            for key in sorted(set(wa) | set(wb)):
                if key not in wa or key not in wb or not torch.equal(
                        wa[key], wb[key]):
                    return (f"{name}: {rel}: first differing tensor '{key}' "
                            f"(resumed against uninterrupted)")
    return None


def step_checkpoints(run_dir):
    """The step checkpoints (of the run, or of any trial or member) there."""
    found = set()
    for folder, _, files in os.walk(run_dir):
        if os.path.basename(folder) == "checkpoints":
            found.update(os.path.join(folder, f) for f in files
                         if f.startswith("step-") and f.endswith(".ckpt"))
    return found


def interrupted(name, args, whole_run, stop, landed_needed):
    """Stops the run with `stop` at random moments until `landed_needed`
    stops landed (each after a checkpoint the attempt wrote, then resumed
    from it), then lets it finish; the directory."""
    seconds, checkpoint_times = whole_run
    gaps = [b - a for a, b in zip(checkpoint_times, checkpoint_times[1:])]
    gap = sorted(gaps)[len(gaps) // 2] if gaps else 0.1
    # A SIGTERM in the training (after the last checkpoint it lets the run
    # finish); a SIGKILL at any moment: as often in the training as after
    # the last checkpoint (the final evaluation, the files).
    tail = seconds - checkpoint_times[-1]
    for attempt in range(5):
        cut = os.path.join(ROOT, f"{name}.{signal.Signals(stop).name}"
                           f".{attempt}")
        shutil.rmtree(cut, ignore_errors=True)
        landed = 0
        while landed < landed_needed:
            # Later attempts, after one that finished first, stop sooner.
            late = stop == signal.SIGKILL and RNG.random() < 0.5
            delay = RNG.uniform(0, (tail if late else gap) * 0.6 ** attempt)
            code, _, output, _ = run(args + ["--resume=auto"], cut, stop,
                                     delay)
            if code == 0:
                break  # finished before the stop
            # SIGTERM before main installed its handler (LibTorch still
            # loading) ends the process as any program: -15.
            expected = ({-signal.SIGKILL} if stop == signal.SIGKILL else
                        {143, -signal.SIGTERM})
            if code not in expected:
                raise AssertionError(
                    f"{name}: stopped by {signal.Signals(stop).name} "
                    f"{delay:.2f} s after a checkpoint, exit {code} "
                    f"(expected {expected}):\n" + output[-3000:])
            landed += 1
            log(f"  {name}: {signal.Signals(stop).name} {delay:.2f} s after "
                f"a checkpoint (stop {landed})")
        if landed < landed_needed:
            continue
        code, _, output, _ = run(args + ["--resume=auto"], cut)
        if code != 0:
            raise AssertionError(f"{name}: the resume failed, exit {code}:\n"
                                 + output[-3000:])
        return cut
    raise AssertionError(f"{name}: the run finished before {landed_needed} "
                         f"{signal.Signals(stop).name} stops landed, 5 times")


def printed_config_reruns(name, args, whole):
    """--print_config of the case, run with --config=, must give the
    uninterrupted run's weights and results: every value in force is in the
    printed config."""
    printed = subprocess.run([MAIN] + args + ["--print_config"],
                             capture_output=True, text=True)
    if printed.returncode != 0:
        return f"{name}: --print_config failed:\n{printed.stderr[-3000:]}"
    path = os.path.join(ROOT, name + ".printed.json")
    with open(path, "w") as f:
        f.write(printed.stdout)
    rerun = os.path.join(ROOT, name + ".printed")
    shutil.rmtree(rerun, ignore_errors=True)
    code, _, output, _ = run(["--config=" + path], rerun)
    if code != 0:
        return (f"{name}: the printed config failed, exit {code}:\n"
                + output[-3000:])
    return compare(f"{name} (its printed config)", whole, rerun)


def model_cases():
    listing = subprocess.run([MAIN, "--list_plugins"], capture_output=True,
                             text=True, check=True).stdout
    cases = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] != "model":
            continue
        model = parts[1]
        printed = subprocess.run(
            [MAIN, "--model=" + model, "--print_config"], capture_output=True,
            text=True, check=True).stdout
        pipeline = json.loads(printed).get("pipeline") or "train"
        if pipeline != "train":
            # A composite default (the introspective demo) is a case of its
            # own pipeline.
            log(f"{model}: default pipeline {pipeline}, not a model case")
            continue
        cases[model] = ["--model=" + model] + SHORTENED.get(model, GENERIC)
    return cases


def main():
    log(f"resume matrix: seed {SEED} (RESUME_MATRIX_SEED={SEED} repeats the "
        f"stop moments)")
    cases = model_cases()
    cases.update(EXTRA)
    failures = []
    cases = {name: args for name, args in cases.items()
             if not ONLY or name in ONLY}
    for name, args in sorted(cases.items()):
        whole = os.path.join(ROOT, name + ".whole")
        shutil.rmtree(whole, ignore_errors=True)
        code, seconds, output, checkpoint_times = run(args, whole)
        if code == 0 and not checkpoint_times:
            failures.append(f"{name}: the uninterrupted run wrote no step "
                            f"checkpoint before it ended")
            continue
        if code != 0:
            failures.append(f"{name}: the uninterrupted run failed, exit "
                            f"{code}:\n{output[-3000:]}")
            continue
        log(f"{name}: uninterrupted in {seconds:.1f} s, {len(checkpoint_times)}"
            f" checkpoints from {checkpoint_times[0]:.1f} s to "
            f"{checkpoint_times[-1]:.1f} s")
        if args[0].startswith("--model="):
            difference = printed_config_reruns(name, args, whole)
            if difference:
                failures.append(difference)
            else:
                log(f"  {name}: its --print_config, run with --config: "
                    f"identical weights and results")
        for stop, needed in ((signal.SIGKILL, 2), (signal.SIGTERM, 1)):
            try:
                cut = interrupted(name, args, (seconds, checkpoint_times),
                                  stop, needed)
            except AssertionError as error:
                failures.append(str(error))
                continue
            difference = compare(f"{name} ({signal.Signals(stop).name})",
                                 whole, cut)
            if difference:
                failures.append(difference)
            else:
                log(f"  {name}: resumed after {signal.Signals(stop).name}: "
                    f"identical weights and results")
    for failure in failures:
        log("FAIL " + failure)
    log(f"{len(cases)} cases, {len(failures)} failures (seed {SEED})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
