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
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


def parse_seeds(text: str, name: str = "seed_list", limit: int = MAX_SEEDS) -> list[int]:
    """Seeds from a list such as "1,5,9-20" (ranges inclusive), in the order given, without repeats.
    Linear in the count; ValueError naming the input for an empty, malformed or out-of-range list, or
    for more than `limit` distinct seeds (counted before any range is expanded)."""
    valid = "a comma-separated list of seeds and inclusive ranges, e.g. '1,5,9-20'"
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name}: empty; expected {valid}")
    parts = []
    for part in (p.strip() for p in text.split(",")):
        m = _RANGE.match(part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"{name}: range {part!r} runs backwards; expected {valid}")
        elif part.isdigit():
            lo = hi = int(part)
        else:
            raise ValueError(f"{name}: {part!r} is not a seed or a range; expected {valid}")
        if hi > MAX_SEED:
            raise ValueError(f"{name}: seed {hi} is above the largest seed {MAX_SEED}")
        parts.append((lo, hi))
    count = _distinct_count(parts)
    if count > limit:
        raise ValueError(f"{name}: {count} seeds; at most {limit} in one run (split the study into shards of "
                         "seed ranges and merge them)")
    return list(dict.fromkeys(s for lo, hi in parts for s in range(lo, hi + 1)))


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
    stride = re.fullmatch(r"every\s+(-?\d+)", spec)
    if stride:
        n = int(stride.group(1))
        if n < 1:
            raise ValueError(f"{name}: stride {n} in {text!r}; the stride must be at least 1; expected {valid}")
        return sorted(set(range(0, steps + 1, n)) | {steps})
    try:
        ks = parse_seeds(spec, name)
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not understood; expected {valid}") from None
    outside = [k for k in ks if k > steps]
    if outside:
        raise ValueError(f"{name}: step(s) {outside} outside 0..{steps}; expected {valid}")
    return sorted(set(ks) | {0, steps})


def seeds_per_block(n_ks: int, max_batch: int) -> int:
    """Seeds per sampler run. A block of B seeds holds B * n_ks branches but evaluates about half of
    them per step on average (branches share their seed's trunk until they switch), so B = 2 * max_batch
    / n_ks keeps the model calls near max_batch rows; at least one seed."""
    return max(1, (2 * check_max_batch(max_batch)) // max(1, n_ks))


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
