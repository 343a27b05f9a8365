"""Run every notebook of a Binder-like checkout as a reader opens it, with its peak memory.

Executed by the Binder environment's own Python (tests/test_binder.py):
``python binder_session.py CHECKOUT OUT.json``. Each ``notebooks/NAME.ipynb`` that postBuild
wrote is executed as it is (its parameters cell's defaults: nothing injected), from the
checkout's root, with the kernel's peak resident memory sampled (koopman_repro.book.PeakMemory).
"""
import json
import sys
import time
from pathlib import Path

import papermill

from koopman_repro.book import PeakMemory

root, out = Path(sys.argv[1]), Path(sys.argv[2])
report = {}
for nb in sorted((root / "notebooks").glob("*.ipynb")):
    start, error = time.perf_counter(), None
    with PeakMemory() as mem:
        try:
            papermill.execute_notebook(str(nb), str(out.parent / f"{nb.stem}.out.ipynb"), cwd=str(root),
                                       kernel_name="python3", progress_bar=False)
        except Exception as err:  # noqa: BLE001  reported per notebook, asserted by the test
            error = f"{type(err).__name__}: {str(err)[-500:]}"
    report[nb.stem] = {"seconds": time.perf_counter() - start, "peak_mb": mem.peak / 2**20, "error": error}
    print(f"{nb.stem}: {report[nb.stem]['seconds']:.1f} s, {report[nb.stem]['peak_mb']:.0f} MB"
          + (f", {error}" if error else ""), flush=True)
out.write_text(json.dumps(report, indent=2))
