"""pci_core.sweep_plan: the seeds and insertion steps a CIS sweep runs, and its seed blocks."""
import pytest

from pci_core import sweep_plan


def test_seed_list_keeps_order_expands_ranges_and_drops_repeats():
    assert sweep_plan.parse_seeds("1,5,9-12") == [1, 5, 9, 10, 11, 12]
    assert sweep_plan.parse_seeds(" 7 , 3-4, 3 ") == [7, 3, 4]
    assert sweep_plan.parse_seeds("0") == [0]


@pytest.mark.parametrize("text, why", [("", "empty"), ("  ", "empty"), ("1,,2", "is not a seed"),
                                       ("a", "is not a seed"), ("-3", "is not a seed"), ("5-2", "backwards"),
                                       ("1.5", "is not a seed"), (str(2 ** 64), "above the largest seed")])
def test_bad_seed_lists_name_the_input(text, why):
    with pytest.raises(ValueError, match=f"seed_list.*{why}"):
        sweep_plan.parse_seeds(text)


def test_seed_lists_are_counted_before_they_are_expanded():
    """Linear: a range is counted from its ends, so a huge one is refused at once instead of hanging the
    node, and the largest allowed count still parses (its order and repeats as for short lists)."""
    assert len(sweep_plan.parse_seeds("0-20000")) == 20001
    assert sweep_plan.parse_seeds(f"5,0-{sweep_plan.MAX_SEEDS - 1}") == [5] + [s for s in range(sweep_plan.MAX_SEEDS) if s != 5]
    with pytest.raises(ValueError, match=rf"seed_list: {sweep_plan.MAX_SEEDS + 1} seeds; at most {sweep_plan.MAX_SEEDS}"):
        sweep_plan.parse_seeds(f"0-{sweep_plan.MAX_SEEDS}")
    with pytest.raises(ValueError, match=r"seeds: 18446744073709551616 seeds; at most"):
        sweep_plan.parse_seeds(f"0-{sweep_plan.MAX_SEED}", "seeds")


def test_seed_range_is_the_one_seed_rule():
    assert sweep_plan.seed_range(10, 3) == [10, 11, 12]
    for first, count, match in [(0, 0, "seed_count=0"), (-3, 2, r"seed=-3, seed_count=2: seeds must lie in \[0, "),
                                (sweep_plan.MAX_SEED, 2, "seeds must lie in"), (0, sweep_plan.MAX_SEEDS + 1, "seed_count="),
                                (1.5, 2, "seed=1.5"), (0, True, "seed_count=True")]:
        with pytest.raises(ValueError, match=match):
            sweep_plan.seed_range(first, count)
    with pytest.raises(ValueError, match=r"--seed=-1, --n=4"):
        sweep_plan.seed_range(-1, 4, ("--seed", "--n"))


def test_insert_steps_always_include_the_controls():
    assert sweep_plan.parse_steps("all", 4) == [0, 1, 2, 3, 4]
    assert sweep_plan.parse_steps("every 3", 10) == [0, 3, 6, 9, 10]
    assert sweep_plan.parse_steps("Every 5", 10) == [0, 5, 10]
    assert sweep_plan.parse_steps("4,2,6-7", 10) == [0, 2, 4, 6, 7, 10]
    assert sweep_plan.parse_steps("0,10", 10) == [0, 10]


@pytest.mark.parametrize("text, steps, match", [
    ("every 0", 10, "insert_steps: stride 0"), ("every -2", 10, "insert_steps: stride -2"),
    ("3,11", 10, r"insert_steps: step\(s\) 11 outside 0..10"), ("", 10, "insert_steps: empty"),
    ("some", 10, "insert_steps: 'some' is not a step or a range"), ("all", 1, "steps=1: a CIS sweep needs at least 2"),
    ("all", 0, "steps=0")])
def test_bad_insert_steps_name_the_input(text, steps, match):
    with pytest.raises(ValueError, match=match):
        sweep_plan.parse_steps(text, steps)


def test_seed_blocks_keep_the_order_and_fill_about_max_batch_rows_per_call():
    assert sweep_plan.seeds_per_block(21, 64) == 6  # 6 seeds x 21 branches, ~63 distinct rows per step on average
    assert sweep_plan.seeds_per_block(21, 4) == 1
    assert sweep_plan.seed_blocks(list(range(10, 23)), sweep_plan.seeds_per_block(21, 64)) == [list(range(10, 16)), list(range(16, 22)), [22]]
    assert sweep_plan.seed_blocks([], 5) == []
    with pytest.raises(ValueError, match="block size 0"):
        sweep_plan.seed_blocks([1], 0)


@pytest.mark.parametrize("text, steps, match, longest", [
    ("0-99999", 10, r"insert_steps: step\(s\) 11..99999 outside 0..10;", 200),  # was a 688,988-character message
    ("0-100000", 10, r"insert_steps: step\(s\) 11..100000 outside 0..10;", 200),  # was "not understood"
    ("0-4,50,60-70", 10, r"insert_steps: step\(s\) 50 and more outside 0..10;", 200),
])
def test_out_of_range_insert_steps_are_named_in_one_short_line(text, steps, match, longest):
    with pytest.raises(ValueError, match=match) as found:
        sweep_plan.parse_steps(text, steps)
    assert len(str(found.value)) < longest


@pytest.mark.parametrize("text", ["\u00b2", "\u0661\u0662", "1,\u00b2", "3-\u0665", "\uff11"])
def test_digits_of_other_scripts_are_not_seeds(text):
    """'²' gave an int() error naming no input; Arabic-Indic '١٢' was read as 12."""
    with pytest.raises(ValueError, match="seed_list: .* is not a seed or a range of them"):
        sweep_plan.parse_seeds(text)


@pytest.mark.parametrize("seeds, steps, max_batch", [(256, 20, 16), (4, 10000, 64), (100_000, 20, 64), (3, 7, 1)])
def test_branching_runs_hold_at_most_about_twice_max_batch_branches(seeds, steps, max_batch):
    """Memory bounded by design (issue 27): 256 probe seeds x 21 k, or 10,001 insertion steps, or an adaptive
    study's 100,000 seeds never sit in one sampler run; every (seed, k) is in exactly one run."""
    runs = sweep_plan.branch_runs(list(range(seeds)), list(range(steps + 1)), max_batch)
    assert max(len(b) * len(c) for b, c in runs) <= max(2, 2 * max_batch)
    assert sum(len(b) * len(c) for b, c in runs) == seeds * (steps + 1)
