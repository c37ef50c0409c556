"""Distributed training and preemption against the real outside things: two
hosts (network namespaces joined by a veth pair), PyTorch's own torchrun
(Debian's python3-torch), its elastic restarts after a SIGKILLed worker, and
SIGTERM/SIGINT at random moments.

  python3 distributed_real_test.py two_hosts|torchrun|restart|preemption|pipelines

Run by Bazel (tests/BUILD) as root, as CI runs. Nothing is skipped: a test
that cannot make its namespaces fails and says why. Traffic goes only over
loopback and between the namespaces a test made itself; every wait is
bounded.
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import torch

WS = os.path.join(os.environ["TEST_SRCDIR"], "ouroboros")
MAIN = os.path.join(WS, "ouroboros/main")
TORCHRUN = os.path.join(WS, "tools/torchrun")
TINY = os.path.join(WS, "tests/testdata/tiny_mlp.json")
TMP = os.environ["TEST_TMPDIR"]
# A bounded wait for any one process.
LIMIT_SECONDS = 240


def fail(message):
    print("FAIL:", message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def config_file(name, samples=320, features=8, layers=(16,), epochs=2,
                checkpoint_every=7, batch=16):
    """The tiny synthetic config, resized; no dropout (the ranks' random
    streams differ from one process's)."""
    with open(TINY) as f:
        config = json.load(f)
    config["data_config"]["synthetic"].update(
        {"num_samples": samples, "num_features": features})
    config["run_config"].update(
        {"epochs": epochs, "batch_size": batch,
         "checkpoint_every_steps": checkpoint_every})
    config["model_config"] = {"layer_sizes": list(layers), "dropout": 0}
    path = os.path.join(TMP, name + ".json")
    with open(path, "w") as f:
        json.dump(config, f)
    return path


def run(argv, env=None, log=None, timeout=LIMIT_SECONDS):
    """Runs to the end; returns (exit code, output)."""
    log = log or os.path.join(TMP, "run-%d.log" % time.monotonic_ns())
    with open(log, "w") as out:
        code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                              env=env, timeout=timeout).returncode
    with open(log) as f:
        return code, f.read()


def environment(**extra):
    env = dict(os.environ)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                 "MASTER_PORT", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                 "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT",
                 "GLOO_SOCKET_IFNAME"):
        env.pop(name, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def newest_weights(run_dir):
    directory = os.path.join(run_dir, "checkpoints")
    names = sorted(n for n in os.listdir(directory)
                   if n.startswith("step-") and n.endswith(".weights.pt"))
    check(names, "%s: no step-*.weights.pt" % directory)
    return os.path.join(directory, names[-1])


def assert_close(a_dir, b_dir, tolerance):
    a = torch.load(newest_weights(a_dir))
    b = torch.load(newest_weights(b_dir))
    check(a.keys() == b.keys(), "parameter names differ: %s %s" % (a.keys(), b.keys()))
    for name in a:
        difference = (a[name] - b[name]).abs().max().item()
        check(difference <= tolerance,
              "%s differs by %g between %s and %s" % (name, difference, a_dir, b_dir))
        check(a[name].abs().sum().item() > 0, name + " is all zero")


def assert_identical(a_dir, b_dir):
    """Bit-identical final weights and final metrics."""
    with open(newest_weights(a_dir), "rb") as a, open(newest_weights(b_dir), "rb") as b:
        check(a.read() == b.read(), "final weights of %s and %s differ" % (a_dir, b_dir))
    metrics = []
    for d in (a_dir, b_dir):
        with open(os.path.join(d, "metrics.json")) as f:
            m = json.load(f)
        metrics.append({k: m[k] for k in ("epochs", "steps", "val", "test")})
    check(metrics[0] == metrics[1], "metrics differ: %s vs %s" % tuple(metrics))


def single_process(config, run_dir, batch):
    code, out = run([MAIN, "--config=" + config, "--run_dir=" + run_dir,
                     "--threads=1", "--set=run_config.batch_size=%d" % batch],
                    env=environment())
    check(code == 0, "single process failed:\n" + out)


# --- two hosts -------------------------------------------------------------

class TwoHosts:
    """Two network namespaces, 10.99.0.1 and 10.99.0.2, joined by a veth
    pair; names unique to this process."""

    def __init__(self):
        tag = str(os.getpid())
        self.hosts = ["ouro%sa" % tag, "ouro%sb" % tag]
        self.links = ["ov%sa" % tag, "ov%sb" % tag]
        self.addresses = ["10.99.0.1", "10.99.0.2"]

    def ip(self, *args):
        result = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
        if result.returncode != 0:
            fail("cannot build the two test hosts: `ip %s`: %s (this test needs "
                 "root and iproute2, as CI has)" % (" ".join(args), result.stderr.strip()))

    def __enter__(self):
        check(os.geteuid() == 0, "two_hosts needs root to make network namespaces "
              "(CI runs as root); running as uid %d" % os.geteuid())
        for host in self.hosts:
            self.ip("netns", "add", host)
        self.ip("link", "add", self.links[0], "type", "veth", "peer", "name", self.links[1])
        for host, link, address in zip(self.hosts, self.links, self.addresses):
            self.ip("link", "set", link, "netns", host)
            self.ip("netns", "exec", host, "ip", "addr", "add", address + "/24", "dev", link)
            self.ip("netns", "exec", host, "ip", "link", "set", link, "up")
            self.ip("netns", "exec", host, "ip", "link", "set", "lo", "up")
        return self

    def __exit__(self, *unused):
        for host in self.hosts:  # the veth pair goes with them
            subprocess.run(["ip", "netns", "del", host], capture_output=True)

    def run_ranks(self, argv, interface_variable):
        """One rank per host; rank 0 on 10.99.0.1 is the master."""
        processes = []
        logs = []
        for rank, (host, link) in enumerate(zip(self.hosts, self.links)):
            env = environment(RANK=rank, WORLD_SIZE=2, MASTER_ADDR=self.addresses[0],
                              MASTER_PORT=29533, OUROBOROS_DIST_TIMEOUT=60)
            if interface_variable:
                env["GLOO_SOCKET_IFNAME"] = link
            logs.append(open(os.path.join(TMP, "%s-rank%d.log" % (os.path.basename(argv[-1]), rank)), "w+"))
            processes.append(subprocess.Popen(
                ["ip", "netns", "exec", host] + argv, env=env,
                stdout=logs[-1], stderr=subprocess.STDOUT))
        outputs = []
        for process, log in zip(processes, logs):
            try:
                process.wait(timeout=LIMIT_SECONDS)
            except subprocess.TimeoutExpired:
                for p in processes:
                    p.kill()
                fail("the two hosts' ranks did not finish in %d s" % LIMIT_SECONDS)
            log.seek(0)
            outputs.append(log.read())
        for rank, (process, out) in enumerate(zip(processes, outputs)):
            check(process.returncode == 0, "rank %d exited %d:\n%s" % (rank, process.returncode, out))
        return outputs


def test_two_hosts():
    config = config_file("two_hosts")
    single_process(config, os.path.join(TMP, "one"), batch=32)
    with TwoHosts() as hosts:
        # The loopback of one host is not the other's: a rank that bound its
        # Gloo device to MASTER_ADDR, or to 127.0.0.1, fails here.
        for variable, run_dir in ((False, "route"), (True, "ifname")):
            run_dir = os.path.join(TMP, run_dir)
            outputs = hosts.run_ranks(
                [MAIN, "--config=" + config, "--threads=1",
                 "--set=run_config.batch_size=16", "--run_dir=" + run_dir],
                interface_variable=variable)
            expected = ("interface ov%sa (GLOO_SOCKET_IFNAME)" % os.getpid() if variable
                        else "Gloo on 10.99.0.1 (the route to MASTER_ADDR 10.99.0.1)")
            check(expected in outputs[0], "rank 0 does not say '%s':\n%s" % (expected, outputs[0]))
            assert_close(os.path.join(TMP, "one"), run_dir, 1e-5)
    print("two hosts: both device choices train like one process with the doubled batch")


# --- torchrun ----------------------------------------------------------------

def torchrun(args, main_args, log, kill=None):
    """python3 tools/torchrun ARGS --no_python main MAIN_ARGS; `kill` (if
    given) is called with the running launcher while it runs."""
    argv = [TORCHRUN, "--nproc_per_node=2", "--master_port=%d" % free_port(),
            "--monitor_interval=0.2"] + args + ["--no_python", MAIN] + main_args
    with open(log, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   env=environment(OUROBOROS_DIST_TIMEOUT=60))
        try:
            if kill:
                kill(process)
            process.wait(timeout=LIMIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            fail("torchrun did not finish in %d s; see %s" % (LIMIT_SECONDS, log))
    with open(log) as f:
        return process.returncode, f.read()


def test_torchrun():
    config = config_file("torchrun")
    single_process(config, os.path.join(TMP, "one"), batch=32)
    run_dir = os.path.join(TMP, "torchrun")
    code, out = torchrun([], ["--config=" + config, "--threads=1",
                              "--set=run_config.batch_size=16", "--run_dir=" + run_dir],
                         os.path.join(TMP, "torchrun.log"))
    check(code == 0, "torchrun exited %d:\n%s" % (code, out))
    check("torchrun agent's store, restart 0" in out, "rank 0 did not join the agent's store:\n" + out)
    assert_close(os.path.join(TMP, "one"), run_dir, 1e-5)
    print("torchrun: 2 workers train like one process with the doubled batch")


def worker_pid(run_dir, rank, restart):
    """The torchrun worker of `rank` in its attempt `restart` whose command
    line names `run_dir`, or None."""
    want = {b"RANK=%d" % rank, b"TORCHELASTIC_RESTART_COUNT=%d" % restart}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if run_dir.encode() not in f.read():
                    continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                if want <= set(f.read().split(b"\0")):
                    return int(pid)
        except OSError:
            continue
    return None


def test_restart():
    # About 10 s of training: room to kill a worker in the middle.
    config = config_file("restart", samples=8000, features=64, layers=(256, 256),
                         epochs=3, checkpoint_every=25)
    common = ["--config=" + config, "--threads=1", "--resume=auto",
              "--set=run_config.batch_size=16"]
    whole = os.path.join(TMP, "whole")
    code, out = torchrun(["--max_restarts=1"], common + ["--run_dir=" + whole],
                         os.path.join(TMP, "whole.log"))
    check(code == 0, "uninterrupted torchrun exited %d:\n%s" % (code, out))

    cut = os.path.join(TMP, "cut")
    killed = {}

    def kill_rank_one_mid_run(launcher):
        # After the second checkpoint, SIGKILL worker 1 of the first attempt.
        deadline = time.monotonic() + LIMIT_SECONDS
        target = os.path.join(cut, "checkpoints", "step-000000050.ckpt")
        while not os.path.exists(target):
            check(time.monotonic() < deadline and launcher.poll() is None,
                  "no checkpoint at step 50 appeared in %s" % cut)
            time.sleep(0.01)
        pid = worker_pid(cut, 1, 0)
        check(pid is not None, "worker 1 not found")
        os.kill(pid, signal.SIGKILL)
        killed["pid"] = pid
        killed["final_exists"] = os.path.exists(os.path.join(cut, "metrics.json"))

    code, out = torchrun(["--max_restarts=1"], common + ["--run_dir=" + cut],
                         os.path.join(TMP, "cut.log"), kill=kill_rank_one_mid_run)
    check(code == 0, "torchrun after a killed worker exited %d:\n%s" % (code, out))
    check(not killed["final_exists"], "the run had ended before the kill; make it longer")
    check("torchrun restart 1: continuing from" in out,
          "the restarted workers did not continue from a checkpoint:\n" + out)
    assert_identical(whole, cut)
    print("restart: worker %d SIGKILLed; the restarted job ended bit-identical" % killed["pid"])


# --- preemption ----------------------------------------------------------------

def test_preemption():
    config = config_file("preempt", samples=12000, features=64, layers=(256, 256),
                         epochs=8, checkpoint_every=0)
    common = ["--threads=1"]
    whole = os.path.join(TMP, "whole")
    start = time.monotonic()
    code, out = run([MAIN, "--config=" + config, "--run_dir=" + whole] + common,
                    env=environment())
    seconds = time.monotonic() - start
    check(code == 0, "uninterrupted run failed:\n" + out)
    trained = re.search(r"trained \d+ epochs?, \d+ steps in ([\d.]+) s", out)
    check(trained is not None, "no 'trained ... in S s' line:\n" + out)
    # Signals land within the training, not the start-up: each one at most a
    # fifth of the training into its attempt, so four of them cannot use it up.
    training_seconds = float(trained.group(1))

    seed = int(os.environ.get("PREEMPTION_SEED", time.time_ns() % 100000))
    rng = random.Random(seed)
    print("preemption: seed %d (PREEMPTION_SEED=%d repeats it); a whole run takes %.1f s, "
          "its training %.1f s" % (seed, seed, seconds, training_seconds))
    cut = os.path.join(TMP, "cut")
    argv = [MAIN, "--config=" + config, "--run_dir=" + cut] + common
    stops = 0
    for attempt, signal_number in enumerate(
            [signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGTERM, None]):
        log = os.path.join(TMP, "cut-%d.log" % attempt)
        with open(log, "w") as f:
            process = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                       env=environment())
            if signal_number is not None:
                # A random moment of the training: the handler exists only
                # once main() runs, after the dynamic loader's work.
                wait_for_text(log, "epoch ", process)
                time.sleep(rng.uniform(0.05, max(0.1, training_seconds * 0.2)))
                process.send_signal(signal_number)
            code = process.wait(timeout=LIMIT_SECONDS)
        with open(log) as f:
            out = f.read()
        if code == 0:
            break
        check(code == 128 + signal_number,
              "attempt %d: exit %d, not %d:\n%s" % (attempt, code, 128 + signal_number, out))
        name = signal.Signals(signal_number).name
        check("stopped by %s after step" % name in out and "; checkpoint " in out,
              "attempt %d: no stop line:\n%s" % (attempt, out))
        # log.txt keeps the stop as its last line, dated like the others and
        # not as an error.
        with open(os.path.join(cut, "log.txt")) as f:
            last = f.read().splitlines()[-1]
        check(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  stopped by %s " % name,
                       last) is not None,
              "attempt %d: log.txt's last line is %r" % (attempt, last))
        stops += 1
        argv = [MAIN, "--resume=" + cut] + common
    check(code == 0, "the last resume failed:\n" + out)
    check(stops >= 2, "only %d of the signals stopped the run; it is too short" % stops)
    assert_identical(whole, cut)
    print("preemption: %d stops, then bit-identical final weights and metrics" % stops)


def wait_for_text(path, text, process):
    deadline = time.monotonic() + LIMIT_SECONDS
    while True:
        with open(path) as f:
            if text in f.read():
                return
        check(process.poll() is None, "%s: ended before it printed '%s'" % (path, text))
        check(time.monotonic() < deadline, "%s: no '%s'" % (path, text))
        time.sleep(0.01)


def wait_for_checkpoints(directories, process):
    deadline = time.monotonic() + LIMIT_SECONDS
    while True:
        ready = all(os.path.isdir(os.path.join(d, "checkpoints")) and any(
            n.startswith("step-") for n in os.listdir(os.path.join(d, "checkpoints")))
            for d in directories)
        if ready:
            return
        check(process.poll() is None, "the parent ended before its children checkpointed")
        check(time.monotonic() < deadline, "no checkpoints in %s" % directories)
        time.sleep(0.02)


def stop_parent(argv, children, log):
    """Starts a parent pipeline, SIGTERMs it once every child has a
    checkpoint, and returns its exit code and output."""
    with open(log, "w") as f:
        process = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                   env=environment())
        wait_for_checkpoints(children, process)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=LIMIT_SECONDS)
    with open(log) as f:
        return code, f.read()


def test_pipelines():
    # 10 epochs (about 3 s a member alone): long enough that no member
    # finishes before the last one has its first checkpoint and the SIGTERM
    # comes, also on a loaded machine (at 3 epochs a member once finished
    # in 0.9 s while the other was starting).
    base = config_file("member", samples=6000, features=64, layers=(256, 256),
                       epochs=10, checkpoint_every=20)
    with open(base) as f:
        member = json.load(f)

    # A tune: both trials run at once; the parent forwards SIGTERM.
    tune = dict(member, pipeline="tune", pipeline_config={
        "search": "grid", "max_concurrent": 2, "trial_threads": 1, "metric": "accuracy",
        "skip_final_run": True, "early_stopping": {"method": "none"},
        "space": {"optim_config.lr": {"grid": [0.003, 0.01]}}})
    tune_config = os.path.join(TMP, "tune.json")
    with open(tune_config, "w") as f:
        json.dump(tune, f)
    tune_dir = os.path.join(TMP, "tune")
    trials = [os.path.join(tune_dir, "trials", "trial-00%d" % i) for i in (0, 1)]
    code, out = stop_parent([MAIN, "--config=" + tune_config, "--run_dir=" + tune_dir],
                            trials, os.path.join(TMP, "tune-stop.log"))
    check(code == 143, "tune: exit %d after SIGTERM:\n%s" % (code, out))
    check("continue with --resume=" + tune_dir in out, "tune: no resume hint:\n" + out)
    for trial in trials:
        with open(trial + ".out") as f:
            trial_out = f.read()
        check("stopped by SIGTERM after step" in trial_out,
              "%s did not stop cleanly:\n%s" % (trial, trial_out))
    code, out = run([MAIN, "--resume=" + tune_dir], env=environment())
    check(code == 0, "tune resume failed:\n" + out)
    with open(os.path.join(tune_dir, "trials.json")) as f:
        states = [t["state"] for t in json.load(f)["trials"]]
    check(states == ["succeeded", "succeeded"], "trial states after resume: %s" % states)
    for trial in trials:
        with open(os.path.join(trial, "log.txt")) as f:
            check("resumed from" in f.read(), trial + " started over instead of resuming")

    # A parallel job: same, resumed as a whole (each member continues).
    parallel = {"run_name": "par", "pipeline": "parallel", "pipeline_config": {
        "workers": 2, "threads_per_pipeline": 1,
        "pipelines": [{"name": "a", "config": base},
                      {"name": "b", "config": base, "set": ["seed=2"]}]}}
    parallel_config = os.path.join(TMP, "parallel.json")
    with open(parallel_config, "w") as f:
        json.dump(parallel, f)
    parallel_dir = os.path.join(TMP, "parallel")
    members = [os.path.join(parallel_dir, "pipelines", name) for name in ("a", "b")]
    code, out = stop_parent([MAIN, "--config=" + parallel_config, "--run_dir=" + parallel_dir],
                            members, os.path.join(TMP, "parallel-stop.log"))
    check(code == 143, "parallel: exit %d after SIGTERM:\n%s" % (code, out))
    check("--resume=" + parallel_dir in out, "parallel: no resume hint:\n" + out)
    code, resumed_out = run([MAIN, "--resume=" + parallel_dir, "--threads=1"],
                            env=environment())
    check(code == 0, "resuming the parallel job failed:\n" + resumed_out)
    for member_dir in members:
        check(os.path.exists(os.path.join(member_dir, "metrics.json")),
              member_dir + " did not finish after the parallel job's resume")
        with open(os.path.join(member_dir, "log.txt")) as f:
            check("resumed from" in f.read(), member_dir + " started over instead of resuming")

    # main --nproc=2: the launcher forwards SIGTERM, the ranks agree on a
    # step, rank 0 checkpoints, and the resumed job ends bit-identical.
    ranks = ["--config=" + base, "--nproc=2", "--threads=1"]
    whole = os.path.join(TMP, "ranks_whole")
    code, out = run([MAIN] + ranks + ["--run_dir=" + whole], env=environment())
    check(code == 0, "--nproc=2 failed:\n" + out)
    cut = os.path.join(TMP, "ranks_cut")
    code, out = stop_parent([MAIN] + ranks + ["--run_dir=" + cut], [cut],
                            os.path.join(TMP, "ranks-stop.log"))
    check(code == 143, "--nproc=2: exit %d after SIGTERM:\n%s" % (code, out))
    check("stopped by SIGTERM after step" in out, "--nproc=2: no stop line:\n" + out)
    code, out = run([MAIN, "--resume=" + cut, "--nproc=2", "--threads=1"], env=environment())
    check(code == 0, "--nproc=2 resume failed:\n" + out)
    assert_identical(whole, cut)
    print("pipelines: tune, parallel and --nproc forwarded SIGTERM; every child "
          "resumed to its end")


if __name__ == "__main__":
    tests = {"two_hosts": test_two_hosts, "torchrun": test_torchrun,
             "restart": test_restart, "preemption": test_preemption,
             "pipelines": test_pipelines}
    if len(sys.argv) != 2 or sys.argv[1] not in tests:
        fail("usage: distributed_real_test.py " + "|".join(tests))
    tests[sys.argv[1]]()
