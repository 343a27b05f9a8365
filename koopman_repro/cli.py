"""The ``koopman`` command: ``reproduce`` (one experiment), ``book`` (execute the notebooks and build
the HTML) and ``bench`` (the performance benchmarks). Its help is plain text (:data:`DESCRIPTION`,
:func:`epilog`); the expected run times it prints are read from the saved runs' ``wall_seconds``
(``results/paper/*.json``, ``results/full/*.json``, ``_build/results/ci/*.json``), never written
here, and fall back to "see README" where no saved run exists."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .results import REPO_ROOT

DESCRIPTION = """\
Reproduce "Optimizing Neural Networks via Koopman Operator Theory" (Dogra & Redman,
NeurIPS 2020): run one experiment, build the book, or run the benchmarks.

Profiles:
  ci     the same code paths with fewer random initialisations; what CI and the
         default book build run
  paper  the paper's settings (every experiment); the chapters show these saved
         runs beside the ci numbers
  full   "Beyond the paper" only (experiment beyond): its whole design, more
         networks and larger grids than paper

Each profile writes by default where the book reads it: ci to _build/results/ci,
paper to results/paper, full to results/full. Run times below are the saved runs'
on 2 cores; run full-scale runs one at a time on a shared machine."""

#: every profile ``reproduce`` accepts; ``full`` only for an experiment whose PROFILES has it
REPRODUCE_PROFILES = ("ci", "paper", "full")
#: the folder the book reads each profile's results from (relative to the repository root):
#: ``koopman_repro.book.build`` (``_build/results/PROFILE``) and ``koopman_repro.report.saved_results``
#: (``results/PROFILE``)
DEFAULT_OUT = {"ci": Path("_build") / "results" / "ci",
               "paper": Path("results") / "paper",
               "full": Path("results") / "full"}


def default_out(profile: str) -> Path:
    """The results folder the book reads profile ``profile`` from (absolute)."""
    return REPO_ROOT / DEFAULT_OUT[profile]


def saved_wall_seconds(profile: str) -> dict[str, float]:
    """``{experiment: wall_seconds}`` of the runs saved in the default folder of ``profile``."""
    out = {}
    for path in sorted(default_out(profile).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        # an experiment's results (``reproduce`` adds provenance), not e.g. notebook-timings.json
        if (isinstance(data, dict) and isinstance(data.get("wall_seconds"), (int, float))
                and isinstance(data.get("provenance"), dict) and data["provenance"].get("profile") == profile):
            out[path.stem] = float(data["wall_seconds"])
    return out


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def run_times(profile: str) -> str:
    """One line per profile for the help: each experiment's saved run time, or "see README"."""
    walls = saved_wall_seconds(profile)
    if not walls:
        return f"{profile}: no saved run in {DEFAULT_OUT[profile]}: see README"
    return f"{profile}: " + ", ".join(f"{k} {_duration(v)}" for k, v in walls.items())


def mnist_line() -> str:
    """The warning about the MNIST paper run, with its saved run time."""
    wall = saved_wall_seconds("paper").get("mnist")
    if wall is None:
        return "An MNIST paper run is the longest run (see README)."
    over = "over an hour" if wall > 3600 else "under an hour"
    return f"An MNIST paper run takes {over} on 2 cores ({_duration(wall)} in {DEFAULT_OUT['paper'] / 'mnist.json'})."


def epilog() -> str:
    return "\n".join([
        "Expected run times on 2 cores (wall_seconds of the saved runs):",
        *("  " + run_times(p) for p in REPRODUCE_PROFILES),
        mnist_line(),
        "",
        "Examples:",
        "  koopman reproduce perceptron                     # profile ci, into _build/results/ci",
        "  koopman reproduce mnist --profile paper          # into results/paper (the book reads it)",
        "  koopman reproduce beyond --profile full          # into results/full",
        "  koopman reproduce de-solver --seed 1 --out /tmp/de --set de_inits=2",
        "  koopman reproduce perceptron --check results/paper/perceptron.json --networks 3 17",
        "  koopman book --profile ci --only perceptron --no-html",
        "  koopman bench --profile ci --out /tmp/bench",
        "",
        "Settings for the MNIST data: KOOPMAN_DATA_DIR (a folder holding mnist/ and",
        "fashion-mnist/); unset, the files are downloaded into ~/.cache/koopman_lib/.",
    ])


class UserError(Exception):
    """A mistake in the command line or its inputs: printed without a traceback, exit status 2."""


def _user_errors() -> tuple:
    """The library's errors that mean "fix your input" (each message names the fix)."""
    from koopman_lib.data import DataError
    from koopman_lib.errors import FitError
    from koopman_lib.partition import PartitionError
    return (UserError, FitError, PartitionError, DataError, MemoryError)


def _overrides(pairs: list[str]) -> dict:
    import json
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise UserError(f"--set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def main(argv=None) -> int:
    """The ``koopman`` command. A user error (bad settings, corrupt or missing data, a fit that
    cannot be done) prints the library's message and returns 2, without a traceback."""
    try:
        return _main(argv)
    except _user_errors() as err:
        print(f"koopman: error: {err}", file=sys.stderr)
        return 2


def _fill(text: str) -> str:
    import textwrap
    return textwrap.fill(text, width=88)


def parser() -> argparse.ArgumentParser:
    """The ``koopman`` argument parser (plain-text help, every option described)."""
    from .config import PROFILES
    from .experiments import EXPERIMENTS
    ep = epilog()
    fmt = argparse.RawDescriptionHelpFormatter
    ap = argparse.ArgumentParser(prog="koopman", description=DESCRIPTION, epilog=ep, formatter_class=fmt)
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND",
                            title="commands", description="run 'koopman COMMAND --help' for its options")
    r = sub.add_parser("reproduce", help="run one experiment and write OUT/EXPERIMENT.json (+ CSV tables)",
                       description=_fill("Run one experiment at a profile and write OUT/EXPERIMENT.json "
                                         "(results with provenance: git SHA, versions, seed, profile, config, "
                                         "UTC time, hardware) and its tables as CSV."),
                       epilog=ep, formatter_class=fmt)
    r.add_argument("experiment", choices=sorted(EXPERIMENTS),
                   help="the experiment to run: %(choices)s")
    r.add_argument("--profile", choices=REPRODUCE_PROFILES, default="ci",
                   help="ci (fast, the book build's), paper (the paper's settings) or full (beyond only: "
                   "its whole design); default %(default)s; run times below")
    r.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="folder for the results; default the one the book reads: "
                   + ", ".join(f"{DEFAULT_OUT[p]} for {p}" for p in REPRODUCE_PROFILES))
    r.add_argument("--seed", type=int, default=None,
                   help="random seed of the run (sets the config's seed field; default: the profile's seed)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a field of the experiment's Config; VALUE is read as JSON "
                   "(2, 0.5, true, [1, 3]) or else as a string; repeat for several fields")
    r.add_argument("--check", type=Path, default=None, metavar="RESULTS_FILE",
                   help="instead of a new run: rerun networks of the saved run RESULTS_FILE with the "
                   "settings it records and the code at HEAD, compare their stored check values, print "
                   "every difference and exit 1 on any (koopman_repro.regeneration states what is "
                   "compared and how exactly)")
    r.add_argument("--quick", action="store_true",
                   help="with --check: rerun only what the experiment's quick check keeps (for beyond: its "
                   "DE-solver study and the cycles' optimizer-alone runs, a minute instead of 15); the "
                   "values it does not rerun are listed, apart from the coverage")
    r.add_argument("--networks", nargs="+", default=["auto"], metavar="N",
                   help="with --check: the networks to rerun: indices, 'all', or 'auto' (default: one "
                   "network chosen from the current commit, so that over many commits every network "
                   "is checked)")
    b = sub.add_parser("book", help="execute the notebooks and build the book HTML",
                       description=_fill("Execute the notebooks (papermill) at a profile and build the book "
                                         "HTML into _build/book/_build/html."), formatter_class=fmt)
    b.add_argument("--profile", choices=PROFILES, default="ci",
                   help="the profile the notebooks run at: %(choices)s; default %(default)s")
    b.add_argument("--results", type=Path, default=None, metavar="DIR",
                   help="results folder the notebooks read and write (default _build/results/PROFILE)")
    b.add_argument("--only", nargs="*", default=None, metavar="NAME",
                   help="execute only these notebooks (names of notebooks/NAME.md)")
    b.add_argument("--no-html", action="store_true", help="execute the notebooks only, build no HTML")
    be = sub.add_parser("bench", help="run the performance benchmarks and write OUT/bench.json",
                        description=_fill("Run the performance benchmarks and write OUT/bench.json (+ CSV tables)."),
                        formatter_class=fmt)
    be.add_argument("--profile", choices=PROFILES, default="ci",
                    help="ci or paper; default %(default)s")
    be.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="folder for bench.json; default the one the book reads: "
                    + ", ".join(f"{DEFAULT_OUT[p]} for {p}" for p in PROFILES))
    return ap


def _check(args) -> int:
    """``reproduce EXPERIMENT --check FILE``: 0 when the file regenerates, 1 when it does not."""
    from .regeneration import CheckError, check
    if not args.check.is_file():
        raise UserError(f"--check {args.check}: no such file")
    networks = args.networks if args.networks in (["auto"], ["all"]) else _indices(args.networks)
    try:
        report = check(args.experiment, args.check, networks, quick=args.quick)
    except CheckError as err:
        raise UserError(str(err)) from None
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _indices(values: list[str]) -> list[int]:
    try:
        return [int(v) for v in values]
    except ValueError:
        raise UserError(f"--networks takes indices, 'all' or 'auto', got {' '.join(values)}") from None


def _main(argv=None) -> int:
    ap = parser()
    args = ap.parse_args(argv)

    if args.cmd == "reproduce" and args.check is not None:
        return _check(args)
    if args.cmd == "reproduce":
        from .experiments import config_for, module, reproduce
        start = time.perf_counter()
        overrides = _overrides(args.set)
        if args.profile not in module(args.experiment).PROFILES:
            raise UserError(f"reproduce {args.experiment}: profile {args.profile!r} exists only for "
                            f"experiments that define it (beyond); for {args.experiment} use --profile ci "
                            f"or --profile paper")
        seed = {} if args.seed is None else {"seed": args.seed}
        try:  # a bad field fails here, before the run starts
            config_for(args.experiment, args.profile, **overrides, **seed)
        except ValueError as err:
            raise UserError(f"reproduce {args.experiment}: {err}") from None
        args.out = args.out if args.out is not None else default_out(args.profile)
        res = reproduce(args.experiment, args.profile, args.out, seed=args.seed, **overrides)
        print(f"wrote {args.out / (args.experiment + '.json')} in {time.perf_counter() - start:.1f} s")
        for row in res.get("table", []) if isinstance(res.get("table"), list) else []:
            print("  " + ", ".join(f"{k}={v}" for k, v in row.items()))
        return 0
    if args.cmd == "book":
        from .book import build
        build(args.profile, args.results, args.only, html=not args.no_html)
        return 0
    if args.cmd == "bench":
        try:
            from .bench import main as bench_main
        except ModuleNotFoundError:
            print("the benchmarks are not part of this version", file=sys.stderr)
            return 2
        return bench_main(args.profile, args.out if args.out is not None else default_out(args.profile))
    return 2


if __name__ == "__main__":
    sys.exit(main())
