"""Concept studies: concept lists, taxonomy files, the adaptive lock-in search, shards and merge."""
import json

import numpy as np
import pytest

from pci_core import adaptive, cis, cli, insertion, study, taxonomy
from pci_core.demo import demo_model, pipeline, demo_measure
from pci_core.demo import world_study
from pci_core.demo.world import DEMO_BASE

TAXONOMY = {"demographics": {"gender": ["man", "woman"], "age": ["young", "old"]}, "weather": {"sky": ["rain"]}}
SMALL = pipeline.SamplerSettings(steps=6)


@pytest.fixture(scope="module")
def model():
    return demo_model.load()


# ---------------------------------------------------------------- concept lists and taxonomies

def test_concept_list_fills_template_skips_the_base_value_and_judges_the_judge_template():
    cl = study.concept_list("a {} circle on the left", "red", "blue\n\n  green \nred\n", judge_template="a {} shape")
    assert cl.base_prompt == "a red circle on the left"
    assert [c.value for c in cl.concepts] == ["blue", "green"] and cl.skipped == ("red",)
    assert cl.concepts[0].prompt == "a blue circle on the left"
    assert (cl.concepts[1].judge_text, cl.concepts[1].contrast) == ("a green shape", "a red shape")
    empty_base = study.concept_list("a photo of a {} person at a playground", "", ["old"])
    assert empty_base.base_prompt == "a photo of a person at a playground"
    assert empty_base.concepts[0].prompt == "a photo of a old person at a playground"


@pytest.mark.parametrize("template, base, values, message", [
    ("a {} person", "", "\n  \n", "values: empty"),
    ("a person", "", "old", r"template 'a person': needs a \{\} slot"),
    ("a {} person", "", "old\nyoung\nold", r"values: duplicate concept\(s\) \['old'\]"),
    ("a {} person", "old", "old", "every value equals the base value 'old'"),
])
def test_bad_concept_lists_are_named(template, base, values, message):
    with pytest.raises(ValueError, match=message):
        study.concept_list(template, base, values)


def test_taxonomy_dotted_paths_as_the_official_runner(tmp_path):
    assert taxonomy.taxonomy_lists(TAXONOMY, "demographics.gender") == {"demographics.gender": ["man", "woman"]}
    assert list(taxonomy.taxonomy_lists(TAXONOMY, "demographics")) == ["demographics.gender", "demographics.age"]
    assert list(taxonomy.taxonomy_lists(TAXONOMY)) == ["demographics.gender", "demographics.age", "weather.sky"]
    with pytest.raises(ValueError, match=r"no key 'gendr' in demographics \(it has 2 keys\)"):
        taxonomy.taxonomy_lists(TAXONOMY, "demographics.gendr")
    with pytest.raises(ValueError, match=r"no key 'style' in the top level \(it has 2 keys\)"):
        taxonomy.taxonomy_lists(TAXONOMY, "style")
    with pytest.raises(ValueError, match=r"duplicate concept\(s\) \['rain'\]"):
        taxonomy.taxonomy_lists({"w": ["rain", "rain"]}, "w")


def test_bad_taxonomy_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="taxonomy file '.*missing.json' does not exist"):
        taxonomy.load_taxonomy(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"demographics": {"gender": ["man",', encoding="utf-8")
    with pytest.raises(ValueError, match="taxonomy file '.*bad.json' is not JSON"):
        taxonomy.load_taxonomy(tmp_path / "bad.json")


def test_shipped_demo_taxonomy_gives_five_attribute_lists_against_the_base():
    lists = world_study.taxonomy_concepts(taxonomy.load_taxonomy(world_study.TAXONOMY))
    assert [p.split(".")[-1] for p in lists] == ["shape", "colour", "size", "position", "background"]
    colour = lists["demo_world.colour"]
    assert colour.template == "a large {} circle on the left on a black background" and colour.skipped == ("red",)
    assert [(c.value, c.judge_text) for c in colour.concepts] == [
        ("green", "a green shape"), ("blue", "a blue shape"), ("yellow", "a yellow shape")]
    assert sum(len(c.concepts) for c in lists.values()) == 11  # 16 values less the 5 of the base
    with pytest.raises(ValueError, match="'purple'.* are not demo-world values of colour"):
        world_study.attribute_concepts(DEMO_BASE, "x.colour", ["purple"])


# ---------------------------------------------------------------- the adaptive search (pure algorithm)

def step_decisions(lock_in: list[float], steps: int) -> np.ndarray:
    """Seed s shows the concept for k < lock_in[s]: a monotone CIS curve."""
    return np.arange(steps + 1)[None, :] < np.asarray(lock_in)[:, None]


def search(decisions, steps, **kw):
    calls = []

    def measure(ks):
        calls.append(list(ks))
        return decisions[:, ks]
    return adaptive.adaptive_search(measure, steps, **kw), calls


@pytest.mark.parametrize("centre", [3.3, 9.6, 16.2])
def test_adaptive_search_finds_tau50_within_a_step_on_a_third_of_the_evaluations(centre):
    rng = np.random.default_rng(0)
    d = step_decisions(centre + rng.normal(0, 1.0, 32), 20)
    full_tau = cis.first_crossing(list(range(21)), cis.cis_curve(d))
    found, calls = search(d, 20)
    assert calls[0] == [0, 7, 14, 20] and found.rounds == calls
    assert abs(found.tau50 - full_tau) <= 1
    assert found.evaluations_per_seed == sum(adaptive.branch_cost(ks, 20) for ks in calls)
    assert found.evaluations_per_seed <= 0.35 * adaptive.branch_cost(range(21), 20)
    assert np.array_equal(found.decisions, d[:, found.ks])


def test_adaptive_search_with_a_large_budget_brackets_by_neighbouring_steps_and_equals_the_full_sweep():
    d = step_decisions(np.linspace(5.2, 8.7, 16), 20)
    found, _ = search(d, 20, budget=1.0)
    assert found.tau50 == cis.first_crossing(list(range(21)), cis.cis_curve(d))
    assert "neighbouring steps" in found.stopped


def cis_decisions(curve, seeds: int = 20) -> np.ndarray:
    """Decisions (seeds, K) whose CIS is exactly curve (non-increasing, multiples of 1/seeds): seed s shows
    the concept at k while s < curve[k] * seeds."""
    return np.arange(seeds)[:, None] < np.round(np.asarray(curve) * seeds)[None, :]


# CIS curves over k = 0..20 whose 0.5 crossing the coarse grid (0, 7, 14, 20) alone misreads by more than
# half a step: the crossing lies inside a coarse bracket, away from where the straight line through the
# bracket's ends puts it. Full sweep 7.4 (coarse alone 8.4), 12.4 (11.67), 16.125 (16.67).
CURVE_7_4 = [1, 1, 1, .95, .9, .8, .7, .6, .35, .3, .25, .2, .15, .15, .1, .1, .05, .05, .05, 0, 0]
CURVE_12_4 = [1, 1, 1, 1, 1, .95, .95, .9, .85, .8, .75, .7, .6, .35, .3, .2, .1, .05, 0, 0, 0]
CURVE_16_1 = [1] * 14 + [.9, .8, .55, .15, .1, 0, 0]


@pytest.mark.parametrize("curve, budget, full_tau", [(CURVE_7_4, adaptive.DEFAULT_BUDGET, 7.4),
                                                     (CURVE_12_4, 0.5, 12.4), (CURVE_16_1, 0.5, 16.125)])
def test_adaptive_refinement_finds_crossings_the_coarse_grid_cannot(curve, budget, full_tau):
    d = cis_decisions(curve)
    assert cis.first_crossing(list(range(21)), cis.cis_curve(d)) == pytest.approx(full_tau, abs=1e-12)
    coarse = [0, 7, 14, 20]
    assert abs(cis.first_crossing(coarse, cis.cis_curve(d[:, coarse])) - full_tau) > 0.5
    found, calls = search(d, 20, budget=budget)
    assert found.tau50 == pytest.approx(full_tau, abs=1e-12)
    assert calls[0] == coarse and len(found.rounds) >= 2 and found.rounds == calls
    a = int(full_tau)
    assert found.brackets == [(a, a + 1)] and "neighbouring steps" in found.stopped
    assert found.evaluations_per_seed <= budget * adaptive.branch_cost(range(21), 20)


def test_adaptive_search_never_crossing_and_non_monotone_curves():
    never, _ = search(np.ones((4, 11), dtype=bool), 10)
    assert never.tau50 is None and never.rounds == [[0, 4, 8, 10]] and "never falls" in never.stopped
    # CIS 1 until k=2, 0 at k=3..4, 1 again at k=5..7, then 0: the coarse grid (0, 4, 8, 10) sees one fall
    # (between 0 and 4) and refines it; the rise at 5..7 lies between two coarse ks that both read 0, so the
    # search never sees it: tau50 is 2.5 on the measured ks, where the full sweep reads 7.5 (its last fall)
    curve = np.array([1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0], dtype=bool)
    wavy, _ = search(np.tile(curve, (4, 1)), 10, budget=1.0)
    assert wavy.tau50 == cis.first_crossing(wavy.ks, wavy.curve) == 2.5
    assert cis.first_crossing(list(range(11)), curve.astype(float)) == 7.5
    assert wavy.ks == [0, 1, 2, 3, 4, 8, 10] and wavy.brackets == [(2, 3)]
    # two falls the coarse grid sees: the one tau50 is read at is refined (the last by default, as the
    # full sweep reads it; the first when read from the noisy end)
    curve = np.array([1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0], dtype=bool)
    twice, _ = search(np.tile(curve, (4, 1)), 10, stride=2, budget=1.0)
    assert twice.tau50 == 8.5 == cis.first_crossing(list(range(11)), curve.astype(float))
    assert twice.brackets == [(2, 4), (8, 9)]
    first, _ = search(np.tile(curve, (4, 1)), 10, stride=2, budget=1.0, reading=cis.NOISY_END)
    assert first.tau50 == 3.5 and first.brackets == [(3, 4), (8, 10)]


def test_bad_search_settings_are_named():
    with pytest.raises(ValueError, match="budget=0"):
        adaptive.adaptive_search(lambda ks: None, 10, budget=0)
    with pytest.raises(ValueError, match=r"decide\(\[0, 4, 8, 10\]\) returned shape \(2, 3\)"):
        adaptive.adaptive_search(lambda ks: np.ones((2, 3)), 10)


def test_branch_cost_counts_the_rows_the_demo_model_evaluates(model):
    concept = world_study.attribute_concepts(DEMO_BASE, "colour", ["blue"]).concepts[0]
    for ks in ([0, 3, 6], [2, 4], list(range(7))):
        counter = insertion.EvalCounter()
        demo_measure.demo_measure(model, DEMO_BASE, concept.prompt, concept.judge_text, SMALL, counter=counter)([0, 1], ks)
        assert counter.rows == 2 * adaptive.branch_cost(ks, 6)
    assert adaptive.branch_cost(range(21), 20) == 20 + sum(20 - k for k in range(21))


# ---------------------------------------------------------------- studies, shards and merge

def colour_lists(values=("blue", "yellow")):
    return {"demo_world.colour": world_study.attribute_concepts(DEMO_BASE, "colour", list(values))}


def test_merging_seed_and_concept_shards_equals_running_the_study_whole(model, tmp_path):
    whole = world_study.run_study(model, colour_lists(), [0, 1, 2, 3], tmp_path / "whole", SMALL, seed_block=2)
    world_study.run_study(model, colour_lists(), [0, 1], tmp_path / "a", SMALL, seed_block=2)
    world_study.run_study(model, colour_lists(["blue"]), [2, 3], tmp_path / "b", SMALL, seed_block=2)
    world_study.run_study(model, colour_lists(["yellow"]), [3, 2], tmp_path / "c", SMALL, seed_block=2)
    merged = study.merge_studies([tmp_path / "c", tmp_path / "b", tmp_path / "a"])
    assert sorted(k for k, _, _ in merged) == ["colour/blue", "colour/yellow"]
    by_key = {k: r for k, _, r in merged}
    for key, label, result in whole:
        m = by_key[key]
        assert (m.seeds, m.ks, m.concept, m.settings) == (result.seeds, result.ks, result.concept, result.settings)
        assert np.array_equal(m.scores, result.scores)
    # the merge command writes a study folder again: table, plot, run folders; re-merging it is a no-op
    assert cli.main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c"),
                     "--out", str(tmp_path / "m")]) == 0
    again = dict((k, r) for k, _, r in study.merge_studies([tmp_path / "m"]))
    assert all(np.array_equal(again[k].scores, r.scores) for k, _, r in whole)
    assert "colour: blue" in (tmp_path / "m" / "study.txt").read_text()
    assert (tmp_path / "m" / "study.png").stat().st_size > 0


def test_merge_refuses_shards_with_different_settings(model, tmp_path, capsys):
    world_study.run_study(model, colour_lists(["blue"]), [0], tmp_path / "a", SMALL)
    world_study.run_study(model, colour_lists(["blue"]), [1], tmp_path / "b", pipeline.SamplerSettings(steps=6, cfg=3.0))
    assert cli.main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "differ in settings.cfg" in err and str(tmp_path / "a") in err and str(tmp_path / "b") in err
    assert not (tmp_path / "m").exists()
    world_study.run_study(model, colour_lists(["yellow"]), [1], tmp_path / "c", pipeline.SamplerSettings(steps=6, cfg=3.0))
    with pytest.raises(ValueError, match="concepts with different settings.*settings.cfg"):
        study.merge_studies([tmp_path / "a", tmp_path / "c"])


def test_study_command_adaptive_resumes_and_bad_paths_are_named(tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["study", str(world_study.TAXONOMY), "--path", "demo_world.size", "--n", "2", "--steps", "6",
            "--adaptive", "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "size: small" in text and "skipped (= base value): demo_world.size: large" in text
    stored = json.loads((out / "size" / "small" / "results.json").read_text())
    assert stored["header"]["settings"]["search"] == "adaptive" and 0 in stored["header"]["ks"]
    assert cli.main(argv) == 0  # read back, nothing recomputed
    assert cli.main([a if a != "2" else "3" for a in argv]) == 2  # 3 seeds
    assert "resumes only with the same seeds" in capsys.readouterr().err
    assert cli.main(["study", str(world_study.TAXONOMY), "--path", "demo_world.hue", "--out", str(out)]) == 2
    assert "no key 'hue' in demo_world (it has 5 keys)" in capsys.readouterr().err


# ---------------------------------------------------------------- taxonomy files from strangers (issue 27)

@pytest.mark.parametrize("leaf, kind", [(1, "int"), (None, "null"), (["x", "y"], "list"), ({"k": 1}, "an object"),
                                         (True, "true/false")])
def test_a_taxonomy_value_that_is_not_text_is_named_by_position(tmp_path, leaf, kind):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"a": {"b": ["young", leaf]}}))
    with pytest.raises(ValueError, match=rf"taxonomy path 'a.b': item 1 is {kind}; every value must be text"):
        taxonomy.taxonomy_lists(taxonomy.load_taxonomy(path), "a.b")


def test_a_deep_large_or_secret_file_is_refused_without_echoing_it(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(ValueError, match="deep.json"):
        taxonomy.load_taxonomy(deep)
    nested = tmp_path / "nested.json"
    node = ["v"]
    for i in range(40):
        node = {f"k{i}": node}
    nested.write_text(json.dumps(node))
    with pytest.raises(ValueError, match="nested more than 32 levels deep"):
        taxonomy.taxonomy_lists(taxonomy.load_taxonomy(nested))
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"a": ["x" * 100] * 20_000}))
    with pytest.raises(ValueError, match=r"big.json': \d+ bytes, more than 1000000"):
        taxonomy.load_taxonomy(big)
    secret = tmp_path / "credentials.json"
    secret.write_text(json.dumps({"aws": {"token": "AKIA-SECRET-1234", "user": ["admin"]}}))
    for path in ("aws.token", "aws.nothing", "aws"):
        try:
            taxonomy.one_taxonomy_list(taxonomy.load_taxonomy(secret), path)
        except ValueError as e:
            assert "AKIA-SECRET-1234" not in str(e) and "admin" not in str(e) and "user" not in str(e), e
    not_json = tmp_path / "notes.txt"
    not_json.write_text("password = hunter2")
    with pytest.raises(ValueError) as found:
        taxonomy.load_taxonomy(not_json)
    assert "hunter2" not in str(found.value)


def test_values_that_share_a_folder_are_refused_naming_both():
    with pytest.raises(ValueError, match=r"values: 'old person' and 'old_person' would share the result folder"):
        study.check_distinct_folders(["old person", "young", "old_person"])
    with pytest.raises(ValueError, match=r"'blue' and 'blue\.' would share"):
        study.check_distinct_folders(["blue", "blue."])
    study.check_distinct_folders(["blue", "green"])
