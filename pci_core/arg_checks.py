"""The command line's argument checks, run before any work: a bad value ends in a ValueError naming the
flag (the command line prints it in one line and exits 2). A leaf module: the demo commands and the
distributed study use it; the parser (pci_core.cli) sits above them all."""
from __future__ import annotations

import math
from pathlib import Path

from .sweep_plan import seed_range


def check_whole(value, flag: str, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{flag}={value}: must be a whole number, at least {least}")
    return value


def check_cfg(value, flag: str = "--cfg") -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{flag}={value}: must be a finite guidance scale, 0 or more (e.g. 4)")
    return float(value)


def check_out_folder(path, flag: str = "--out") -> Path:
    """The output folder (made later, when there is something to write); ValueError when it is a file or
    lies below one."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists() and not place.is_dir():
            raise ValueError(f"{flag} {str(path)!r}: {str(place)!r} is a file; give a folder (it is created if missing)")
    return path


def check_out_file(path, flag: str = "--out") -> Path:
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {str(path)!r} is a folder; give the file to write, e.g. {str(path / 'model.safetensors')!r}")
    check_out_folder(path.parent, flag)
    return path


def seeds(args) -> list[int]:
    """--seed and --n as seeds: the one seed rule of the nodes (pci_core.sweep_plan.seed_range)."""
    return seed_range(args.seed, args.n, ("--seed", "--n"))


def torch_threads(n: int | None) -> None:
    if n:
        import torch
        torch.set_num_threads(check_whole(n, "--threads", 1))
