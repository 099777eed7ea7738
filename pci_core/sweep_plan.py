"""What a CIS sweep runs: which seeds, which insertion steps, and in which seed blocks.

Host-free parsing of the user's text inputs (CISSweep's `seeds` and `insert_steps`) and the block
plan: a sweep runs its seeds block by block, one batched sampler run per block, so that results can
be written after every block and memory stays bounded by max_batch.
"""
from __future__ import annotations

import re
from typing import Sequence

MAX_SEED = 0xFFFFFFFFFFFFFFFF  # ComfyUI's seed range
MAX_SEEDS = 100_000  # seeds in one run (CISSweep's seed_count limit); a study of more is sharded
MIN_SWEEP_STEPS = 2  # k = 0 (concept only) and k = steps (base only) are a sweep's controls
_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: int() would read other scripts' digits ('١٢' as 12)
_RANGE = re.compile(r"([0-9]+)\s*-\s*([0-9]+)")


def parse_seeds(text: str, name: str = "seed_list", limit: int = MAX_SEEDS) -> list[int]:
    """Seeds from a list such as "1,5,9-20" (ranges inclusive), in the order given, without repeats.
    Linear in the count; ValueError naming the input for an empty, malformed or out-of-range list, or
    for more than `limit` distinct seeds (counted before any range is expanded)."""
    valid = "a comma-separated list of seeds and inclusive ranges, e.g. '1,5,9-20'"
    parts = _intervals(text, name, valid, "seed")
    for _, hi in parts:
        if hi > MAX_SEED:
            raise ValueError(f"{name}: seed {hi} is above the largest seed {MAX_SEED}")
    count = _distinct_count(parts)
    if count > limit:
        raise ValueError(f"{name}: {count} seeds; at most {limit} in one run (split the study into shards of "
                         "seed ranges and merge them)")
    return list(dict.fromkeys(s for lo, hi in parts for s in range(lo, hi + 1)))


def _intervals(text: str, name: str, valid: str, what: str) -> list[tuple[int, int]]:
    """The (lo, hi) of each comma-separated number or inclusive range in text; ValueError naming the input
    (and the part, shortened) for anything else."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name}: empty; expected {valid}")
    parts = []
    for part in (p.strip() for p in text.split(",")):
        m = _RANGE.fullmatch(part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"{name}: range {part!r} runs backwards; expected {valid}")
        elif _NUMBER.fullmatch(part):
            lo = hi = int(part)
        else:
            shown = part if len(part) <= 40 else part[:40] + "..."
            raise ValueError(f"{name}: {shown!r} is not a {what} or a range of them (digits 0-9); expected {valid}")
        parts.append((lo, hi))
    return parts


def _distinct_count(intervals: list[tuple[int, int]]) -> int:
    """How many distinct integers inclusive intervals cover (overlaps counted once), without expanding them."""
    count, reach = 0, -1
    for lo, hi in sorted(intervals):
        if hi > reach:
            count += hi - max(lo, reach + 1) + 1
            reach = hi
    return count


def seed_range(first: int, count: int, names: tuple[str, str] = ("seed", "seed_count")) -> list[int]:
    """count seeds from first on (first, first + 1, ...): the one seed rule of nodes and commands alike."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SEEDS:
        raise ValueError(f"{names[1]}={count!r}: must be a whole number from 1 to {MAX_SEEDS}")
    if isinstance(first, bool) or not isinstance(first, int):
        raise ValueError(f"{names[0]}={first!r}: must be a whole number in [0, {MAX_SEED}]")
    if first < 0 or first + count - 1 > MAX_SEED:
        raise ValueError(f"{names[0]}={first}, {names[1]}={count}: seeds must lie in [0, {MAX_SEED}] (as ComfyUI's "
                         "seeds: a negative seed is not one)")
    return list(range(first, first + count))


def seeds_of(seed: int, seed_count: int, seed_list: str) -> list[int]:
    """A sweep node's seeds: the explicit list when one is given, else seed_count seeds from seed on."""
    if isinstance(seed_list, str) and seed_list.strip():
        return parse_seeds(seed_list)
    return seed_range(seed, seed_count)


def parse_steps(text: str, steps: int, name: str = "insert_steps") -> list[int]:
    """Insertion steps k to measure, sorted, with the controls 0 and steps always included:
    "all" (0..steps), "every N" (0, N, 2N, ... and steps), or a list such as "2,4,8-12"."""
    if steps < MIN_SWEEP_STEPS:
        raise ValueError(f"steps={steps}: a CIS sweep needs at least {MIN_SWEEP_STEPS} steps (k = 0 and k = steps "
                         "are the controls)")
    valid = f"'all', 'every N' (a stride, N >= 1), or a list of steps in [0, {steps}] such as '2,4,8-12'"
    spec = text.strip().lower() if isinstance(text, str) else ""
    if not spec:
        raise ValueError(f"{name}: empty; expected {valid}")
    if spec == "all":
        return list(range(steps + 1))
    stride = re.fullmatch(r"every\s+(-?[0-9]+)", spec)
    if stride:
        n = int(stride.group(1))
        if n < 1:
            raise ValueError(f"{name}: stride {n} in {text!r}; the stride must be at least 1; expected {valid}")
        return sorted(set(range(0, steps + 1, n)) | {steps})
    parts = _intervals(spec, name, valid, "step")
    outside = [(lo, hi) for lo, hi in parts if hi > steps]
    if outside:
        lo, hi = outside[0]
        shown = f"{max(lo, steps + 1)}..{hi}" if hi > max(lo, steps + 1) else str(hi)
        raise ValueError(f"{name}: step(s) {shown}{' and more' if len(outside) > 1 else ''} outside 0..{steps}; "
                         f"expected {valid}")
    return sorted({k for lo, hi in parts for k in range(lo, hi + 1)} | {0, steps})


def seeds_per_block(n_ks: int, max_batch: int) -> int:
    """Seeds per sampler run. A block of B seeds holds B * n_ks branches but evaluates about half of
    them per step on average (branches share their seed's trunk until they switch), so B = 2 * max_batch
    / n_ks keeps the model calls near max_batch rows; at least one seed."""
    return max(1, (2 * check_max_batch(max_batch)) // max(1, n_ks))


def branch_runs(seeds: Sequence[int], ks: Sequence[int], max_batch: int) -> list[tuple[list[int], list[int]]]:
    """The branching sampler runs of a measurement, (seeds, ks) each: seeds in blocks of seeds_per_block, and
    where one seed's branches alone pass 2 * max_batch (thousands of steps), its ks in chunks of that many,
    so no run holds more than about 2 * max_batch branches (a chunk recomputes its seeds' shared prefix)."""
    size = max(2, 2 * check_max_batch(max_batch))
    chunks = [list(ks[i:i + size]) for i in range(0, len(ks), size)]
    return [(block, chunk) for chunk in chunks for block in seed_blocks(seeds, seeds_per_block(len(chunk), max_batch))]


def seed_blocks(seeds: Sequence[int], size: int) -> list[list[int]]:
    """The seeds in order, cut into blocks of `size` (e.g. seeds_per_block)."""
    if size < 1:
        raise ValueError(f"block size {size}: must be at least 1")
    return [list(seeds[i:i + size]) for i in range(0, len(seeds), size)]


def check_max_batch(max_batch, auto: bool = False) -> int:
    """Rows per model call: a whole number >= 1 (or 0 = the device policy, where auto is allowed)."""
    least = 0 if auto else 1
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < least:
        raise ValueError(f"max_batch={max_batch!r}: " + ("0 (auto) or a whole number of at least 1" if auto else
                                                         "must be a whole number of at least 1"))
    return max_batch


def check_threshold(threshold) -> float:
    """A CIS run's judge threshold, strictly between 0 and 1 (a score >= threshold is a yes)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold={threshold!r}: must lie strictly between 0 and 1 (a score >= threshold is a yes)")
    return float(threshold)
