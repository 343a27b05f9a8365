"""Resuming an interrupted run of an experiment: each finished stage (MNIST: a group of the paper's
experiment, the replication; the DE solver: one optimizer in one training dtype, the solver check) is
kept in a partial-results file next to the output, ``OUT/.partial/<experiment>/<stage>.json`` (written
atomically), with the config that made it. A later run with the same config reads it
instead of recomputing the stage; a file made with another config is ignored (and said so). The
files are deleted when the run completes.

Every stage's result goes through the same encoding whether it was just computed or read back
(:meth:`Partial.stage`), so a resumed run gives exactly the results of an uninterrupted one:
tensors keep their dtype and values (floats are written by their shortest repr, NaN and inf
included), tuples become lists."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .results import atomic_write_text, to_jsonable

_TENSOR = "__tensor__"


def encode(obj):
    """``obj`` as JSON-able data that :func:`decode` turns back into equal values (tensors with
    their dtype, floats exactly, NaN and inf kept)."""
    if isinstance(obj, torch.Tensor):
        return {_TENSOR: obj.detach().cpu().tolist(), "dtype": str(obj.dtype).removeprefix("torch.")}
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) for k in obj):
            raise TypeError(f"partial results: dict keys must be str or int, got {list(obj)[:3]}")
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return encode(torch.from_numpy(obj))
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    return obj


def decode(obj):
    """The inverse of :func:`encode` (dict keys stay strings)."""
    if isinstance(obj, dict):
        if _TENSOR in obj:
            return torch.tensor(obj[_TENSOR], dtype=getattr(torch, obj["dtype"]))
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def _text(obj) -> str:
    return json.dumps(obj, allow_nan=True)


@dataclasses.dataclass
class Partial:
    """The partial results of one run with config ``cfg`` in ``folder`` (``None``: nothing is written,
    each stage is still encoded and decoded, so that results never depend on a resume)."""

    folder: Path | None
    cfg: object

    @classmethod
    def beside(cls, results_dir, cfg, experiment: str) -> "Partial":
        """The partial results of a run of ``experiment`` (its registry name) whose output goes to
        ``results_dir`` (``None``: none kept), in ``results_dir/.partial/<experiment>/``."""
        return cls(None if results_dir is None else Path(results_dir) / ".partial" / experiment, cfg)

    @property
    def config(self) -> dict:
        return to_jsonable(dataclasses.asdict(self.cfg))

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def load(self, name: str):
        """The saved result of stage ``name`` when it was made with this config, else ``None``."""
        if self.folder is None or not self.path(name).is_file():
            return None
        try:
            saved = json.loads(self.path(name).read_text())
        except (OSError, ValueError) as err:
            print(f"ignoring {self.path(name)}: unreadable ({err})")
            return None
        if saved.get("config") != self.config:
            print(f"ignoring {self.path(name)}: made with another config")
            return None
        print(f"resuming: {name} read from {self.path(name)}")
        return decode(saved["result"])

    def stage(self, name: str, compute: Callable[[], object]):
        """Stage ``name``'s result: read back if a run with this config kept it, else computed (and
        kept). Either way the result has been through :func:`encode` / :func:`decode`."""
        done = self.load(name)
        if done is not None:
            return done
        encoded = encode(compute())
        text = _text(encoded)
        if self.folder is not None:
            atomic_write_text(self.path(name), _text({"config": self.config, "result": encoded}))
        return decode(json.loads(text))

    def clear(self) -> None:
        """Delete the partial results (the run completed)."""
        if self.folder is None or not self.folder.is_dir():
            return
        for path in self.folder.glob("*.json"):
            path.unlink()
        for folder in (self.folder, self.folder.parent):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
