"""GPU validation in one command: ``python3 -m bench.gpu`` (``make gpu``).

Runs on a CUDA machine with that machine's own Python, torch and triton, and creates no
virtual environment: the repository is used from source (on PYTHONPATH, never installed)
and the wheels carried in ``.whl/`` (scripts/fetch_gpu_wheels.sh) that this Python lacks
are installed into ``.gpu-site/``, also put on PYTHONPATH. The steps, in order:

    wheels       install the carried wheels this Python lacks; check the needed modules
    environment  GPU, driver, CUDA, torch / triton / numba / numba-cuda versions
    compile      every triton and numba_cuda kernel compiled ahead of time for sm_90 and
                 sm_80 (arsenal gpu-compile, as CI's dry run does): first, so a GPU
                 machine's compilers are seen to agree with CI's before anything runs
    roofline     the measured ceilings (arsenal roofline --refresh)
    matrix       the strict correctness matrix on CUDA (pytest --strict-backends), torch,
                 triton and numba_cuda in float32 and bfloat16, with a junit XML
    ops          the full op suite with the peers, forward and forward_backward
    drift        each recurrent op's error against float64 as T grows (arsenal drift)
    overhead     the per-call cost of the checked entry point (arsenal overhead)
    models       a quick model profile (arsenal models)
    report       the HTML report of every results file above (arsenal report)

``--steps`` runs some of the steps (wheels and environment always run), ``--op`` some of
the ops, ``--suite`` another op suite: a short GPU lease takes ``--steps
compile,roofline,matrix,ops --suite quick``.

Each step's output is streamed, line by line, to the terminal and to ``gpu.log``; a
failing step is recorded and the next steps still run; the exit code is 1 if any step
failed. Everything lands in ``results/gpu/<date>-<gpu-slug>/``: gpu.log, COMMAND (the
exact command), SUMMARY.md (steps, pass/fail, durations; rewritten after every step, so
an interrupted run keeps one), environment.json, junit.xml, results.jsonl, drift.jsonl,
overhead.jsonl, models.jsonl, gpu_compile.jsonl, the roofline and the report.

``--dry`` is the same driver on the CPU (``make gpu-dry``): the compile step in full
(it needs no GPU: it fails the dry run on a kernel that does not compile, spills, or
cannot launch on either chip), then Triton's interpreter and Numba's CUDA simulator, the
matrix on the smallest case of each op, the op step on one tiny case of each op with a
GPU peer, the other commands on tiny inputs, into ``out/gpu-dry/``; past the compile it
proves the plumbing, never the GPU.

This module imports only the standard library: it must start before the carried wheels
are installed, and it must not import torch before the steps set their environment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
# the registry's ops (tests/test_gpu_dry.py checks it); named here because the driver
# imports nothing of the project before the wheels step has made its imports possible
OPS = ("micro_mlp", "gated_update", "logspace_matvec", "parallel_scan", "banked_attention", "stack_step",
       "nsm_route", "elman_scan")
SIMULATION = ("TRITON_INTERPRET", "NUMBA_ENABLE_CUDASIM")
MATRIX_TESTS = ("tests/test_matrix.py", "tests/test_edge_cases.py", "tests/test_bad_input.py",
                "tests/test_contracts.py")
# The GPU backends and the torch oracle in the two dtypes a GPU run is about; numba_cpu
# and float64 are the CPU's business (make test covers them).
MATRIX_SELECTION = "not numba_cpu and not float64"
# Modules the steps import; on the GPU also numba-cuda and the two GPU peers.
NEEDED = ("torch", "triton", "numba", "numpy", "scipy", "pandas", "rich", "pytest", "pytest_benchmark", "hypothesis")
NEEDED_ON_GPU = ("numba_cuda", "fla", "accelerated_scan")
STEPS = ("wheels", "environment", "compile", "roofline", "matrix", "ops", "drift", "overhead", "models", "report")
ALWAYS = ("wheels", "environment")  # run whatever --steps says: the record of what a run ran on
# Dry run: the op step times one tiny case per op (a test case of its contract). The
# CUDA peers are named so that their "unavailable" rows go through the pipeline;
# torch_compile is left out because Inductor compiles for tens of seconds on a CPU.
DRY_CASES = {
    "micro_mlp": "N=33,D=5,activation=relu",
    "gated_update": "B=2,T=17,D=5",
    "logspace_matvec": "B=2,M=5,K=17",
    "parallel_scan": "B=2,T=32,D=8",
    "banked_attention": "B=2,T=9,H=2,N=1,Dk=4,Dv=3",
    "stack_step": "B=2,K=5,D=3",
    "nsm_route": "B=2,T=9,D=5,S=4",
    "elman_scan": "B=2,T=9,D=5",
}
DRY_BACKENDS = "torch,triton,numba_cuda,accelerated_scan,fla"
DRY_OPS = ("gated_update", "parallel_scan", "banked_attention")  # the op step's default: the ops with GPU peers
DRY_TIMING = ("--budget", "0.1", "--settle-ms", "0")


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------


Command = list[str] | Callable[[], list[str]]  # argv, or made when the step runs (from the files written by then)


@dataclass
class Step:
    name: str
    what: str
    commands: list[Command] = field(default_factory=list)  # run in order; the first failure ends the step
    func: Callable[["Run"], int] | None = None  # or a function of the run, returning an exit code
    simulated: bool = True  # a dry run's simulators on for this step (the compile step needs them off)
    status: str = "pending"  # ok, FAILED, skipped
    seconds: float = 0.0
    note: str = ""


@dataclass
class Run:
    dry: bool
    ops: list[str]
    out: Path  # the results directory of this run
    wheels: Path
    site: Path
    argv: list[str]
    suite: str = "full"  # the op step's suite (suites/op_shapes.py)
    selected: list[str] | None = None  # steps to run besides wheels and environment (None: all)
    steps: list[Step] = field(default_factory=list)
    log: "Tee | None" = None

    def env(self, simulated: bool = True) -> dict[str, str]:
        """The environment of every step: the repository (from source) and the carried
        wheels first on PYTHONPATH; the simulators on only in a dry run, for the steps
        that simulate."""
        env = dict(os.environ)
        paths = [str(REPO), str(self.site)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"  # children's lines reach the log as they are printed
        for k in SIMULATION:
            if self.dry and simulated:
                env[k] = "1"
            else:
                env.pop(k, None)  # a GPU run under the interpreter would validate nothing
        if not self.dry:
            env["ARSENAL_CACHE_DIR"] = str(self.out)  # the measured ceilings are kept with the results
        return env


def plan(run: Run) -> list[Step]:
    py = [sys.executable]
    arsenal = py + ["-m", "bench"]
    device = "cpu" if run.dry else "cuda"
    out = run.out
    environment = py + ["-m", "bench.gpu", "--environment", str(out / "environment.json")] + (["--dry"] if run.dry else [])
    # The dry run keeps this machine's cached ceilings: measuring the CPU again costs 12 s
    # and proves nothing the GPU run does not.
    roofline = arsenal + ["roofline", "--device", device] + ([] if run.dry else ["--refresh"])
    ops = "" if run.ops == list(OPS) else f" and ({' or '.join(run.ops)})"
    if run.dry:  # the smallest case of each op (B1-T1-..., N1-D1 for micro_mlp) in the matrix proper
        tests = ["tests/test_matrix.py", "-k", f"test_case and (B1- or N1-) and {MATRIX_SELECTION}{ops}"]
    else:
        tests = [*MATRIX_TESTS, "-k", MATRIX_SELECTION + ops]
    matrix = [py + ["-m", "pytest", "--strict-backends", "-q", "-rfE", *tests, f"--junitxml={out / 'junit.xml'}"]]
    if not run.dry:  # without a GPU tests/conftest.py turns the simulators on: the matrix would pass, simulated
        matrix.insert(0, py + ["-c", "import sys, torch; sys.exit(0 if torch.cuda.is_available() else "
                                     "'no CUDA device: the matrix would run in the simulators')"])
    results = str(out / "results.jsonl")
    modes = ["--mode", "forward,forward_backward"]
    if run.dry:  # one process per op (a --case belongs to one op), each a few seconds
        timed = DRY_OPS if run.ops == list(OPS) else run.ops
        ops_commands = [arsenal + ["ops", "--device", device, "--op", op, "--case", DRY_CASES[op], "--backend",
                                   DRY_BACKENDS, *modes, *DRY_TIMING, "--out", results] for op in timed]
    else:
        only = [] if run.ops == list(OPS) else ["--op", ",".join(run.ops)]
        ops_commands = [arsenal + ["ops", "--suite", run.suite, "--peers", *modes, "--device", device, *only,
                                   "--out", results]]
    files = {name: out / f"{name}.jsonl" for name in ("drift", "overhead", "models", "gpu_compile")}
    only_ops = [] if run.ops == list(OPS) else ["--op", ",".join(run.ops)]
    compile_all = arsenal + ["gpu-compile", *only_ops, "--out", str(files["gpu_compile"])]

    def report() -> list[str]:  # every results file the steps before it wrote
        have = [str(p) for p in (Path(results), *files.values()) if p.exists()]
        return arsenal + ["report", *have, "-o", str(out / "report.html")]

    where = ["--device", device]
    if run.dry:  # tiny: one short sequence, torch's per-call overhead, and the model families
        # listed (one model's profile takes minutes on a 2-core CPU)
        drift = ["--op", "parallel_scan", "--T", "100", *where]
        overhead = ["--op", ",".join(run.ops), "--backend", "torch", "--budget", "0.1", *where]
        models = ["list"]
    else:
        drift = where
        overhead = only_ops + where
        models = ["--suite", "quick", *where, "--out", str(files["models"])]
    return [
        Step("wheels", "install the carried wheels this Python lacks; check the needed modules", func=install_wheels),
        Step("environment", "GPU, driver, CUDA and package versions", [environment]),
        Step("compile", "every triton and numba_cuda kernel compiled for sm_90 and sm_80: registers, spills, "
             "occupancy", [compile_all], simulated=False),
        Step("roofline", "the measured ceilings", [roofline]),
        Step("matrix", "strict correctness matrix: torch, triton, numba_cuda x float32, bfloat16", matrix),
        Step("ops", "op suite with peers, forward and forward_backward", ops_commands),
        Step("drift", "forward error against float64 as T grows",
             [arsenal + ["drift", *drift, "--out", str(files["drift"])]]),
        Step("overhead", "per-call cost of the checked entry point",
             [arsenal + ["overhead", *overhead, "--out", str(files["overhead"])]]),
        Step("models", "quick model profile", [arsenal + ["models", *models]]),
        Step("report", "HTML report", [report]),
    ]


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


class Tee:
    """Lines to the terminal and to the log file, flushed as they come."""

    def __init__(self, path: Path):
        self.file = path.open("a", encoding="utf-8")

    def write(self, text: str) -> None:
        for stream in (sys.stdout, self.file):
            stream.write(text)
            stream.flush()

    def close(self) -> None:
        self.file.close()


def run_command(argv: list[str], env: dict, log: Tee) -> int:
    log.write(f"$ {shlex.join(argv)}\n")
    try:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1)
    except OSError as exc:
        log.write(f"cannot start {argv[0]}: {exc}\n")
        return 127
    for line in proc.stdout:
        log.write(line)
    return proc.wait()


def run_step(run: Run, step: Step) -> None:
    log = run.log
    log.write(f"\n== {step.name}: {step.what}\n")
    if run.selected is not None and step.name not in (*ALWAYS, *run.selected):
        step.status, step.note = "skipped", "not selected (--steps)"
        log.write(f"== {step.name}: skipped: {step.note}\n")
        return
    start = time.monotonic()
    try:
        if step.func is not None:
            rc = step.func(run)
        else:
            rc = 0
            for command in step.commands:
                rc = run_command(command() if callable(command) else command, run.env(step.simulated), log)
                if rc != 0:
                    break
    except Exception as exc:  # a bug of the driver's own fails this step, not the run
        log.write(f"{type(exc).__name__}: {exc}\n")
        rc, step.note = 1, f"driver error: {type(exc).__name__}"
    step.seconds = time.monotonic() - start
    step.status = "ok" if rc == 0 else "FAILED"
    if rc != 0:
        step.note = f"exit code {rc}" + (f"; {step.note}" if step.note else "")
    log.write(f"== {step.name}: {step.status} in {step.seconds:.1f} s{': ' + step.note if step.note else ''}\n")


def execute(run: Run) -> int:
    """Every step in order, whatever failed before; 1 if any step failed."""
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / "COMMAND").write_text(command_line(run) + "\n")
    run.log = Tee(run.out / "gpu.log")
    run.steps = plan(run)
    run.log.write(f"bench.gpu: {'dry run on the CPU' if run.dry else 'GPU validation'} -> {run.out}\n"
                  f"command: {command_line(run)}\nPYTHONPATH: {run.env()['PYTHONPATH']}\n")
    try:
        for step in run.steps:
            run_step(run, step)
            write_summary(run)
    except KeyboardInterrupt:
        step.status, step.note = "FAILED", "interrupted"
        write_summary(run)
        run.log.write("\ninterrupted\n")
        return 130
    failed = [s.name for s in run.steps if s.status == "FAILED"]
    skipped = [f"{s.name} ({s.note})" for s in run.steps if s.status == "skipped"]
    run.log.write((f"\n{len(failed)} failed step(s): {', '.join(failed)}\n" if failed else "\nall steps passed\n")
                  + (f"skipped: {', '.join(skipped)}\n" if skipped else "") + f"results: {run.out}\n")
    run.log.close()
    return 1 if failed else 0


def command_line(run: Run) -> str:
    """The exact command, runnable from the repository root (the dry run's variables too)."""
    prefix = "TRITON_INTERPRET=1 NUMBA_ENABLE_CUDASIM=1 " if run.dry else ""
    return prefix + shlex.join([sys.executable, "-m", "bench.gpu", *run.argv])


# ---------------------------------------------------------------------------
# Step 0: the carried wheels
# ---------------------------------------------------------------------------


def wheel_project(path: Path) -> str:
    """fla_core-0.6.0-py3-none-any.whl -> fla_core (the name as the wheel spells it)."""
    return path.name.split("-")[0]


def is_installed(project: str, paths: list[str]) -> bool:
    return any(True for _ in importlib.metadata.Distribution.discover(name=project, path=paths))


def top_level_modules(wheel: Path) -> set[str]:
    """The importable names a wheel puts in site-packages (cpuinfo, fla, _cffi_backend)."""
    with zipfile.ZipFile(wheel) as z:
        tops = {name.split("/")[0] for name in z.namelist()}
    return {t.split(".")[0] for t in tops if not t.endswith((".dist-info", ".data"))}


def to_install(wheels: list[Path], paths: list[str]) -> tuple[list[Path], dict[str, str]]:
    """The carried wheels this Python lacks, and why each other one is left out. A wheel
    is left out when its project is installed (the machine's own version wins: it is what
    the machine runs), or when every module it provides is importable already from
    another project (py-cpuinfo2 beside the machine's py-cpuinfo: both are `cpuinfo`)."""
    from importlib.machinery import PathFinder

    install, left_out = [], {}
    for w in wheels:
        project, modules = wheel_project(w), top_level_modules(w)
        if is_installed(project, paths):
            left_out[project] = "installed"
        elif modules and all(PathFinder.find_spec(m, paths) for m in modules):
            left_out[project] = f"{', '.join(sorted(modules))} importable already"
        else:
            install.append(w)
    return install, left_out


def install_wheels(run: Run) -> int:
    """Install into run.site the carried wheels this Python lacks, then check the modules
    the steps need, as the steps will see them."""
    log = run.log
    wheels = list({wheel_project(w): w for w in sorted(run.wheels.glob("*.whl"))}.values())  # one per project
    if not wheels:
        log.write(f"no wheels in {run.wheels}/ (scripts/fetch_gpu_wheels.sh fetches them on a machine with a "
                  "package registry)\n")
    missing, left_out = to_install(wheels, [str(run.site), *sys.path])
    log.write(f"{len(wheels)} carried wheel(s); left out: "
              + (", ".join(f"{k} ({v})" for k, v in left_out.items()) or "none") + "\n")
    rc = 0
    if missing:
        run.site.mkdir(parents=True, exist_ok=True)
        if run_command([sys.executable, "-m", "pip", "--version"], run.env(), log) == 0:
            rc = run_command([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile",
                              "--disable-pip-version-check", "--isolated", "--upgrade", "--target", str(run.site),
                              *map(str, missing)], run.env(), log)
        else:
            log.write("no pip here: unpacking the wheels instead\n")
            for w in missing:
                with zipfile.ZipFile(w) as z:  # a wheel is a zip of its site-packages files
                    z.extractall(run.site)
                log.write(f"unpacked {w.name}\n")
    needed = NEEDED + (() if run.dry else NEEDED_ON_GPU)
    if run_command([sys.executable, "-m", "bench.gpu", "--find-modules", *needed], run.env(), log) != 0:
        run.steps[0].note = "modules missing (see the log)"
        rc = rc or 1
    return rc


def find_modules(names: list[str]) -> int:
    """Exit 1, naming them, when any of these top-level modules cannot be found."""
    import importlib.util

    gone = [m for m in names if importlib.util.find_spec(m) is None]
    print(f"missing modules: {', '.join(gone)}" if gone else f"all needed modules found: {', '.join(names)}")
    return 1 if gone else 0


# ---------------------------------------------------------------------------
# Step 1: the environment (``--environment PATH``, run in the steps' environment)
# ---------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def nvidia_smi() -> dict | None:
    """Name, driver and memory of GPU 0 from nvidia-smi; None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    proc = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                           "--format=csv,noheader"], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    name, driver, memory = (p.strip() for p in proc.stdout.splitlines()[0].split(","))
    return {"name": name, "driver": driver, "memory": memory}


def environment(path: Path, dry: bool) -> int:
    """Print and save what this run ran on; exit 1 on a GPU run that sees no CUDA device."""
    import platform

    import torch

    smi = nvidia_smi()
    cuda = torch.cuda.is_available()
    info = {
        "python": platform.python_version(), "executable": sys.executable, "machine": platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if cuda else None,
        "driver": smi and smi["driver"], "gpu_memory": smi and smi["memory"],
        "cuda": torch.version.cuda, "cuda_available": cuda,
        "simulated": {k: os.environ.get(k) for k in SIMULATION},
        "packages": {d: _version(d) for d in ("torch", "triton", "numba", "numba-cuda", "numpy", "pytest",
                                              "hypothesis", "rich", "plotly", "accelerated-scan",
                                              "flash-linear-attention", "fla-core", "mingru-pytorch")},
    }
    if smi is not None:
        subprocess.run(["nvidia-smi"])  # the full table, into the log
    for key, value in info.items():
        print(f"{key}: {value}")
    path.write_text(json.dumps(info, indent=2) + "\n")
    if not dry and not cuda:
        print("no CUDA device is visible to torch: a GPU validation cannot run here (make gpu-dry on a CPU)")
        return 1
    return 0


# ---------------------------------------------------------------------------
# SUMMARY.md
# ---------------------------------------------------------------------------


def _junit_counts(path: Path) -> str:
    if not path.exists():
        return ""
    try:
        suites = list(ET.parse(path).getroot().iter("testsuite"))
    except ET.ParseError:
        return "junit.xml unreadable"
    n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    return f"{n['tests']} tests: {n['failures']} failed, {n['errors']} errors, {n['skipped']} skipped"


def _record_counts(path: Path) -> str:
    if not path.exists():
        return ""
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        try:
            status = json.loads(line).get("status", "?")
        except (json.JSONDecodeError, AttributeError):
            status = "unreadable"
        counts[status] = counts.get(status, 0) + 1
    return f"{sum(counts.values())} records: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def write_summary(run: Run) -> None:
    info = {}
    if (run.out / "environment.json").exists():
        info = json.loads((run.out / "environment.json").read_text())
    pkgs = info.get("packages", {})
    details = {"matrix": _junit_counts(run.out / "junit.xml"), "ops": _record_counts(run.out / "results.jsonl")}
    details.update({name: _record_counts(run.out / f"{name}.jsonl") for name in ("drift", "overhead", "models")})
    details["compile"] = _record_counts(run.out / "gpu_compile.jsonl")
    lines = [
        f"# {'Dry run (CPU)' if run.dry else 'GPU validation'}: {run.out.name}",
        "",
        f"Command (from the repository root): `{command_line(run)}`",
        "",
        "Device: " + "; ".join(f"{k} {info[k]}" for k in ("gpu", "driver", "cuda", "python") if info.get(k))
        + ("; " if info else "") + ", ".join(f"{k} {v}" for k, v in pkgs.items() if v) + ".",
        "",
        "| step | status | seconds | what | notes |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for s in run.steps:
        note = "; ".join(x for x in (s.note, details.get(s.name, "") if s.status != "pending" else "") if x)
        lines.append(f"| {s.name} | {s.status} | {s.seconds:.1f} | {s.what} | {note} |")
    failed = [s.name for s in run.steps if s.status == "FAILED"]
    done = all(s.status != "pending" for s in run.steps)
    lines += ["", (f"**{len(failed)} failed step(s): {', '.join(failed)}.**" if failed else
                   "All steps passed." if done else "Run in progress or interrupted."),
              "", "Files: gpu.log (every step's output), COMMAND, environment.json, junit.xml (the matrix), "
              "results.jsonl (the op suite), gpu_compile.jsonl, drift.jsonl, overhead.jsonl, models.jsonl, "
              "roofline-*.json (the ceilings, GPU runs) and report.html, each where its step ran."]
    (run.out / "SUMMARY.md").write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def slug(text: str) -> str:
    """"NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def gpu_name() -> str:
    smi = nvidia_smi()
    if smi is not None:
        return smi["name"]
    proc = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.get_device_name(0))"],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "no-gpu"


def results_dir(root: Path, name: str) -> Path:
    """root/<date>-<name>, with -2, -3... when a run of the same day is there already."""
    base = root / f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}-{slug(name)}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m bench.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--dry", action="store_true", help="the CPU dry run: simulators, tiny cases, into out/gpu-dry")
    p.add_argument("--op", help="comma-separated ops for the matrix and op steps (default: all)")
    p.add_argument("--suite", default="full", help="the op step's suite: full (default), quick or stable")
    p.add_argument("--steps", help=f"comma-separated steps to run besides {' and '.join(ALWAYS)} (default: all of "
                   f"{', '.join(STEPS)}); a short GPU lease: --steps roofline,matrix,ops --suite quick")
    p.add_argument("--out-root", type=Path, help="where the run's directory goes (default results/gpu, "
                   "dry: out/gpu-dry)")
    p.add_argument("--wheels", type=Path, default=REPO / ".whl", help="the carried wheels (default .whl)")
    p.add_argument("--site", type=Path, help="where they are installed (default .gpu-site; dry: inside the run's "
                   "directory)")
    # What the steps run in a child process, in the steps' environment:
    p.add_argument("--environment", type=Path, metavar="JSON", help=argparse.SUPPRESS)  # step 1
    p.add_argument("--find-modules", nargs="+", metavar="MODULE", help=argparse.SUPPRESS)  # step 0's check
    return p.parse_args(argv)


def make_run(argv: list[str]) -> Run:
    args = parse_args(argv)
    ops = [o.strip() for o in (args.op or ",".join(OPS)).split(",") if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise SystemExit(f"bench.gpu: unknown op(s) {', '.join(bad)}; valid: {', '.join(OPS)}")
    selected = None if args.steps is None else [x.strip() for x in args.steps.split(",") if x.strip()]
    if selected is not None and not set(selected) <= set(STEPS):
        raise SystemExit(f"bench.gpu: unknown step(s) {', '.join(sorted(set(selected) - set(STEPS)))}; "
                         f"valid: {', '.join(STEPS)}")
    root = args.out_root or REPO / ("out/gpu-dry" if args.dry else "results/gpu")
    out = results_dir(root, "cpu-dry" if args.dry else gpu_name())
    # A dry run installs into its own directory, so that it never leaves packages in
    # .gpu-site/ (which a later GPU run would then think it had installed).
    site = args.site or (out / "site" if args.dry else REPO / ".gpu-site")
    return Run(dry=args.dry, ops=ops, out=out, wheels=args.wheels, site=site, argv=argv, suite=args.suite,
               selected=selected)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.environment is not None:
        return environment(args.environment, args.dry)
    if args.find_modules:
        return find_modules(args.find_modules)
    return execute(make_run(argv))


if __name__ == "__main__":
    raise SystemExit(main())
