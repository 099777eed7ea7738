"""pci_core.sweep: the seeds and insertion steps a CIS sweep runs, and its seed blocks."""
import pytest

from pci_core import sweep


def test_seed_list_keeps_order_expands_ranges_and_drops_repeats():
    assert sweep.parse_seeds("1,5,9-12") == [1, 5, 9, 10, 11, 12]
    assert sweep.parse_seeds(" 7 , 3-4, 3 ") == [7, 3, 4]
    assert sweep.parse_seeds("0") == [0]


@pytest.mark.parametrize("text, why", [("", "empty"), ("  ", "empty"), ("1,,2", "is not a seed"),
                                       ("a", "is not a seed"), ("-3", "is not a seed"), ("5-2", "backwards"),
                                       ("1.5", "is not a seed"), (str(2 ** 64), "above the largest seed")])
def test_bad_seed_lists_name_the_input(text, why):
    with pytest.raises(ValueError, match=f"seed_list.*{why}"):
        sweep.parse_seeds(text)


def test_seed_range():
    assert sweep.seed_range(10, 3) == [10, 11, 12]
    with pytest.raises(ValueError, match="seed_count=0"):
        sweep.seed_range(0, 0)


def test_insert_steps_always_include_the_controls():
    assert sweep.parse_steps("all", 4) == [0, 1, 2, 3, 4]
    assert sweep.parse_steps("every 3", 10) == [0, 3, 6, 9, 10]
    assert sweep.parse_steps("Every 5", 10) == [0, 5, 10]
    assert sweep.parse_steps("4,2,6-7", 10) == [0, 2, 4, 6, 7, 10]
    assert sweep.parse_steps("0,10", 10) == [0, 10]


@pytest.mark.parametrize("text, steps, match", [
    ("every 0", 10, "insert_steps: stride 0"), ("every -2", 10, "insert_steps: stride -2"),
    ("3,11", 10, r"insert_steps: step\(s\) \[11\] outside 0..10"), ("", 10, "insert_steps: empty"),
    ("some", 10, "insert_steps: 'some' is not understood"), ("all", 1, "steps=1: a CIS sweep needs at least 2"),
    ("all", 0, "steps=0")])
def test_bad_insert_steps_name_the_input(text, steps, match):
    with pytest.raises(ValueError, match=match):
        sweep.parse_steps(text, steps)


def test_seed_blocks_keep_the_order_and_fill_about_max_batch_rows_per_call():
    assert sweep.seeds_per_block(21, 64) == 6  # 6 seeds x 21 branches, ~63 distinct rows per step on average
    assert sweep.seeds_per_block(21, 4) == 1
    assert sweep.seed_blocks(list(range(10, 23)), 21, 64) == [list(range(10, 16)), list(range(16, 22)), [22]]
    assert sweep.seed_blocks([], 5, 8) == []
    with pytest.raises(ValueError, match="max_batch=0"):
        sweep.seed_blocks([1], 5, 0)
