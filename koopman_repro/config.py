"""Configs: frozen dataclasses with named profiles (``ci``: fast, same code path; ``paper``)."""
from __future__ import annotations

import dataclasses
from typing import TypeVar

C = TypeVar("C")
PROFILES = ("ci", "paper")


def with_profile(profiles: dict[str, C], name: str, **overrides) -> C:
    """The config of profile ``name``, with field ``overrides`` applied (checked by name)."""
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(profiles)}")
    cfg = profiles[name]
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown config field(s) {sorted(unknown)}; fields are {sorted(fields)}")
    return dataclasses.replace(cfg, **overrides)
