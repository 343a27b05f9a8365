"""``koopman reproduce | book | bench``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


class UserError(Exception):
    """A mistake in the command line or its inputs: printed without a traceback, exit status 2."""


def _user_errors() -> tuple:
    """The library's errors that mean "fix your input" (each message names the fix)."""
    from .data import DataError
    from .operators import FitError
    from .partition import PartitionError
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


def _main(argv=None) -> int:
    from .config import PROFILES
    from .experiments import EXPERIMENTS
    ap = argparse.ArgumentParser(prog="koopman", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reproduce", help="run one experiment and write DIR/EXPERIMENT.json (+ CSV)")
    r.add_argument("experiment", choices=sorted(EXPERIMENTS))
    r.add_argument("--profile", default="ci",
                   help="ci or paper (every experiment); beyond also has full (the whole design)")
    r.add_argument("--out", type=Path, default=Path("results"))
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (JSON value)")
    b = sub.add_parser("book", help="execute the notebooks and build the book HTML")
    b.add_argument("--profile", choices=PROFILES, default="ci")
    b.add_argument("--results", type=Path, default=None, help="results folder (default _build/results/PROFILE)")
    b.add_argument("--only", nargs="*", default=None, help="execute only these notebooks")
    b.add_argument("--no-html", action="store_true", help="execute notebooks only")
    be = sub.add_parser("bench", help="run the benchmarks and write DIR/bench.json")
    be.add_argument("--profile", choices=PROFILES, default="ci")
    be.add_argument("--out", type=Path, default=Path("results"))
    args = ap.parse_args(argv)

    if args.cmd == "reproduce":
        from .experiments import config_for, reproduce
        start = time.perf_counter()
        overrides = _overrides(args.set)
        try:  # a bad profile or field fails here, before the run starts
            config_for(args.experiment, args.profile, **overrides)
        except ValueError as err:
            raise UserError(f"reproduce {args.experiment}: {err}") from None
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
        return bench_main(args.profile, args.out)
    return 2


if __name__ == "__main__":
    sys.exit(main())
