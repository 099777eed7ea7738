"""Editing: the rules that pick the insertion step, the edit metrics, and the edit evaluation on the demo model."""
import math

import numpy as np
import pytest
import torch

from pci_core import edit_metrics, edit_rules, judges
from pci_core.cis import CISResult
from pci_core.demo.rule_judge import RuleJudge
from pci_core.judges import tiny


def result_with_cis(cis_values, ks=None, seeds=20, steps=None, settings=None):
    """A CISResult whose CIS(k) is exactly cis_values (seeds x K decisions; scores 0/1)."""
    ks = list(ks if ks is not None else range(len(cis_values)))
    steps = steps if steps is not None else ks[-1]
    scores = np.zeros((seeds, len(ks)))
    for j, c in enumerate(cis_values):
        scores[: round(c * seeds), j] = 1.0
    sigmas = list(np.linspace(14.6, 0.03, steps)) + [0.0]
    return CISResult(list(range(seeds)), ks, steps, sigmas, scores, 0.5, "blue",
                     settings if settings is not None else {"sampler": "euler", "scheduler": "normal"})


# ---------------------------------------------------------------- the tau rule

def test_tau_rule_takes_the_last_whole_step_before_cis_falls_through_the_level():
    r = result_with_cis([1, 1, 1, 0.75, 0.5, 0.25, 0])
    # CIS(4) = 0.5 is still at the level; it falls through between 4 and 5: tau50 = 4.0
    assert edit_rules.choose_by_tau(r, 0.5).k == 4
    # tau70 = 3 + (0.75 - 0.7) / (0.75 - 0.5) = 3.2 -> 3
    choice = edit_rules.choose_by_tau(r, 0.7)
    assert choice.k == 3 and choice.rule == "tau" and "3.20" in choice.reason


def test_tau_rule_default_is_the_latest_step_of_the_paper_window():
    r = result_with_cis([1, 1, 0.9, 0.65, 0.55, 0.2, 0])
    # tau70 = 2 + 0.2/0.25 = 2.8, tau50 = 4 + 0.05/0.35 = 4.14: whole steps 3 and 4 in the window; 4 is the latest
    choice = edit_rules.choose_by_tau(r)
    assert choice.k == 4 and "latest whole step" in choice.reason and "[2.80, 4.14]" in choice.reason


def test_tau_rule_on_a_steep_curve_takes_the_step_just_before_the_window():
    r = result_with_cis([1, 1, 0.9, 0.3, 0])
    # tau70 = 2 + 0.2/0.6 = 2.33, tau50 = 2 + 0.4/0.6 = 2.67: no whole step inside
    choice = edit_rules.choose_by_tau(r)
    assert choice.k == 2 and "just before it" in choice.reason


def test_tau_rule_on_sparse_steps_interpolates_between_them():
    r = result_with_cis([1, 1, 0.6, 0.2, 0], ks=[0, 5, 10, 15, 20])
    assert edit_rules.choose_by_tau(r, 0.5).k == 11  # 10 + 0.1/0.4 * 5 = 11.25


def test_tau_rule_edges_are_explained():
    never_takes = edit_rules.choose_by_tau(result_with_cis([0.3, 0.1, 0, 0]), 0.5)
    assert never_takes.k == 0 and "already 0.30" in never_takes.reason
    always_seen = edit_rules.choose_by_tau(result_with_cis([1, 1, 0.9, 0.8]), 0.5)
    assert always_seen.k == 3 and "never falls below" in always_seen.reason


# ---------------------------------------------------------------- best score and fixed

def test_best_score_weighs_edit_success_against_preservation():
    ks = [0, 1, 2, 3, 4]
    success = [1.0, 1.0, 0.9, 0.4, 0.0]
    kept = [0.1, 0.3, 0.7, 0.9, 1.0]
    # w = 0.5: 0.55 0.65 0.80 0.65 0.50 -> k = 2
    assert edit_rules.choose_by_score(ks, success, kept, 0.5).k == 2
    assert edit_rules.choose_by_score(ks, success, kept, 1.0).k == 1  # ties (k = 0, 1) go to the later step
    assert edit_rules.choose_by_score(ks, success, kept, 0.0).k == 4
    with pytest.raises(ValueError, match="weight=1.5"):
        edit_rules.choose_by_score(ks, success, kept, 1.5)
    with pytest.raises(ValueError, match="one of each per candidate step"):
        edit_rules.choose_by_score(ks, success[:3], kept, 0.5)


# ---------------------------------------------------------------- latest yes (per seed)

def test_latest_yes_takes_the_largest_step_whose_image_shows_the_edit():
    ks = [0, 1, 2, 3, 4, 5]
    # not monotone: the edit takes at 0-2, misses at 3, takes again at 4, misses at 5 (the source)
    choice = edit_rules.choose_latest_yes(ks, [True, True, True, False, True, False], "seed 5")
    assert choice.k == 4 and choice.rule == "latest yes"
    assert "k=4 is the latest step" in choice.reason and "not at k=5" in choice.reason and "seed 5" in choice.reason
    # a batch: a step counts only when every image shows the edit
    batch = [[True, True, True, True, False, False], [True, True, False, True, True, False]]
    assert edit_rules.choose_latest_yes(ks, batch).k == 3
    # the source itself already shows it: k = steps
    assert "the source already shows it" in edit_rules.choose_latest_yes([0, 1, 2], [False, False, True]).reason
    # candidate steps in any order
    assert edit_rules.choose_latest_yes([2, 0, 1], [False, True, True]).k == 1


def test_latest_yes_when_the_edit_never_takes_regenerates_and_says_so():
    choice = edit_rules.choose_latest_yes([0, 1, 2], [False, False, False])
    assert choice.k == 0 and "the edit never took" in choice.reason and "0:no 1:no 2:no" in choice.reason
    assert edit_rules.choose_step("latest yes", 2, ks=[0, 1, 2], decisions=[True, False, False]).k == 0
    with pytest.raises(ValueError, match="rule 'latest yes' needs the judge's decision.*connect a judge"):
        edit_rules.choose_step("latest yes", 2)
    with pytest.raises(ValueError, match="one decision per candidate step"):
        edit_rules.choose_latest_yes([0, 1, 2], [True, False])


def test_fixed_and_bad_inputs_name_the_input():
    assert edit_rules.choose_step("fixed", 20, fixed_k=7).k == 7
    with pytest.raises(ValueError, match=r"fixed_k=21: must be a whole step in \[0, 20\]"):
        edit_rules.choose_step("fixed", 20, fixed_k=21)
    with pytest.raises(ValueError, match=r"fixed_k=-1"):
        edit_rules.choose_fixed(-1, 20)
    with pytest.raises(ValueError, match="cis_result.*judge"):
        edit_rules.choose_step("tau", 20)
    with pytest.raises(ValueError, match="best score.*connect a judge"):
        edit_rules.choose_step("best score", 20, result=result_with_cis([1, 0]))
    with pytest.raises(ValueError, match="rule 'middle': valid rules are tau, best score, fixed"):
        edit_rules.choose_step("middle", 20)
    with pytest.raises(ValueError, match="level=2"):
        edit_rules.choose_by_tau(result_with_cis([1, 0]), 2)


def test_a_cis_result_from_another_schedule_is_refused_naming_both():
    r = result_with_cis([1, 1, 0.5, 0], steps=3, settings={"sampler": "euler", "scheduler": "karras"})
    edit_rules.check_matching_run(r, 3, "euler", "karras")  # the same run: fine
    with pytest.raises(ValueError, match=r"cis_result was measured with steps=3, sampler=euler, scheduler=karras but "
                                         r"this edit runs steps=20, sampler=euler, scheduler=normal \(differs in "
                                         r"steps, scheduler\)"):
        edit_rules.check_matching_run(r, 20, "euler", "normal")
    with pytest.raises(ValueError, match=r"differs in sampler"):
        edit_rules.check_matching_run(r, 3, "dpmpp_2m", "karras")
    with pytest.raises(ValueError, match=r"differs in sigmas"):
        edit_rules.check_matching_run(r, 3, "euler", "karras", sigmas=[10.0, 1.0, 0.1, 0.0])


def test_inversion_sigmas_run_the_schedule_backwards_to_step_k():
    sigmas = torch.tensor([14.6, 5.0, 1.0, 0.2, 0.0])
    assert torch.equal(edit_rules.inversion_sigmas(sigmas, 2, 0.03), torch.tensor([0.03, 0.2, 1.0]))
    assert torch.equal(edit_rules.inversion_sigmas(sigmas, 0, 0.03), torch.tensor([0.03, 0.2, 1.0, 5.0, 14.6]))
    assert len(edit_rules.inversion_sigmas(sigmas, 4, 0.03)) == 1  # k = T: nothing to invert
    with pytest.raises(ValueError, match=r"insert step=5: must be a whole step in \[0, 4\]"):
        edit_rules.inversion_sigmas(sigmas, 5, 0.03)


# ---------------------------------------------------------------- metrics

def test_psnr_and_ssim_follow_their_definitions():
    source = torch.zeros(2, 16, 16, 3)
    edited = torch.stack([torch.full((16, 16, 3), 0.1), torch.zeros(16, 16, 3)])
    psnr = edit_metrics.psnr(source, edited)
    assert psnr.shape == (2,)
    assert psnr[0].item() == pytest.approx(10 * math.log10(1 / 0.01), abs=1e-4)  # MSE 0.01 -> 20 dB
    assert math.isinf(psnr[1].item())
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    assert edit_metrics.ssim(image, image).item() == pytest.approx(1.0, abs=1e-6)
    assert edit_metrics.ssim(image, 1 - image).item() < 0.0  # inverted contrast: negatively correlated structure
    with pytest.raises(ValueError, match="images: expected ComfyUI IMAGE"):
        edit_metrics.ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))


def gaussian_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """SSIM of two (H, W, 3) images written out (Wang et al. 2004): Gaussian window 11, sigma 1.5,
    C1 = (0.01 L)^2, C2 = (0.03 L)^2, float64; local statistics at every pixel, the image mirrored 5
    pixels beyond its border (reflect, the edge pixel not repeated: torchmetrics' convention), the map
    averaged over pixels and channels."""
    g = np.exp(-0.5 * ((np.arange(11) - 5) / 1.5) ** 2)
    g /= g.sum()

    def blur(x):  # separable filtering of each channel over the mirrored image
        x = np.pad(x, ((5, 5), (5, 5), (0, 0)), mode="reflect")
        x = np.apply_along_axis(lambda v: np.convolve(v, g, "valid"), 0, x)
        return np.apply_along_axis(lambda v: np.convolve(v, g, "valid"), 1, x)

    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = np.maximum(blur(a * a) - mu_a ** 2, 0), np.maximum(blur(b * b) - mu_b ** 2, 0)
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def demo_pairs():
    """Rendered demo-world image pairs (64 px, as the model makes them), an edit apart, plus noise."""
    from pci_core.demo import world
    base = {"shape": "circle", "colour": "red", "size": "large", "position": "left", "background": "black"}
    edits = [{"colour": "blue"}, {"shape": "square"}, {"size": "small"}, {"position": "right"},
             {"background": "gray"}, {"colour": "yellow", "background": "white"}]
    rng = np.random.default_rng(0)
    source = np.stack([world.render(base, rng, size=64) for _ in edits])
    edited = np.stack([world.render({**base, **e}, rng, size=64) for e in edits])
    noisy = np.clip(source + rng.normal(0, 0.05, source.shape), 0, 1).astype(np.float32)
    return np.concatenate([source, source]), np.concatenate([edited, noisy])


def test_ssim_and_psnr_equal_hand_computations_on_demo_world_images():
    """Data range 1 for images in [0, 1]: a wrong range (2, 255) moves SSIM on these pairs by 0.012 to
    0.87, far outside the 2e-4 allowed for float32 against float64 (measured: at most 5.5e-5)."""
    source, edited = demo_pairs()
    got = edit_metrics.ssim(torch.from_numpy(source), torch.from_numpy(edited))
    expected = [gaussian_ssim(a, b) for a, b in zip(source, edited)]
    assert got.tolist() == pytest.approx(expected, abs=2e-4)
    for wrong in (2.0, 255.0):  # the test's power: each pair moves by far more than the tolerance
        assert min(abs(gaussian_ssim(a, b, wrong) - e) for a, b, e in zip(source, edited, expected)) > 1e-2
    mse = ((source.astype(np.float64) - edited) ** 2).mean(axis=(1, 2, 3))
    psnr = edit_metrics.psnr(torch.from_numpy(source), torch.from_numpy(edited))
    assert psnr.tolist() == pytest.approx((10 * np.log10(1.0 / mse)).tolist(), abs=1e-4)


@pytest.fixture(scope="module")
def clip_judge(tmp_path_factory):
    pytest.importorskip("open_clip")
    folder = tmp_path_factory.mktemp("tiny_clip")
    tiny.register_tiny_clip(folder)
    path = tiny.save_clip(tiny.TINY_CLIP, folder)
    return judges.load_judge("clip", model=tiny.TINY_CLIP, weights=str(path))


def _by_hand(judge, images, text):
    """Unit embeddings from the model's own towers, normalised here with plain torch (one template)."""
    with torch.no_grad():
        image = judge.model.encode_image(judge.preprocess(images.permute(0, 3, 1, 2))).float()
        words = judge.model.encode_text(judge.tokenizer([judge.templates[0].replace("{}", text)])).float()[0]
    return image / image.norm(dim=-1, keepdim=True), words / words.norm()


def test_clip_metrics_equal_hand_computed_cosines(clip_judge):
    g = torch.Generator().manual_seed(1)
    source, edited = torch.rand(3, 32, 32, 3, generator=g), torch.rand(3, 32, 32, 3, generator=g)
    src_img, src_txt = _by_hand(clip_judge, source, "a red circle")
    edit_img, edit_txt = _by_hand(clip_judge, edited, "a blue circle")
    cos = lambda a, b: (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    assert torch.allclose(edit_metrics.clip_image_similarity(clip_judge, source, edited), cos(src_img, edit_img), atol=1e-5)
    assert torch.allclose(edit_metrics.clip_text_similarity(clip_judge, edited, "a blue circle"),
                          cos(edit_img, edit_txt[None]), atol=1e-5)
    direction = edit_metrics.clip_directional_similarity(clip_judge, source, edited, "a red circle", "a blue circle")
    assert torch.allclose(direction, cos(edit_img - src_img, (edit_txt - src_txt)[None]), atol=1e-5)
    assert edit_metrics.clip_image_similarity(clip_judge, source, source) == pytest.approx([1.0] * 3, abs=1e-5)


def test_clip_metrics_need_a_clip_judge():
    with pytest.raises(ValueError, match="need a clip judge"):
        edit_metrics.clip_image_similarity(RuleJudge(), torch.zeros(1, 8, 8, 3), torch.zeros(1, 8, 8, 3))


# ---------------------------------------------------------------- the evaluation on the demo model

def test_quick_edit_evaluation_runs_and_inversion_reconstructs_rendered_images():
    from pci_core.demo import edit_eval, edit_report
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the demo model is tiny: more threads only wait on each other on a busy CPU
    try:
        results = edit_eval.run(edit_eval.quick_config(), log=lambda *a: None)
    finally:
        torch.set_num_threads(threads)
    assert [r["edit"] for r in results] == list(edit_eval.QUICK_EDITS)
    for r in results:
        # Measured (one torch thread, as set above; the one quick edit, colour, 4 seeds): regenerate success 1.0;
        # tau 0.5 and tau 0.9 both at k = 2; reconstruction from k = 2: preservation 0.75, PSNR 24.71 dB, SSIM
        # 0.859; from k = 0: PSNR 18.75 dB. The bounds allow one seed of four read differently on another CPU.
        assert r["generated"]["regenerate (k=0)"]["success"] >= 0.75, r["generated"]  # the model can draw the edit
        ks = {label: c.k for label, c in r["choices"].items()}
        assert ks["tau 0.9"] <= ks["tau 0.5"] <= 3, ks  # a surer edit comes earlier
        rec = r["reconstruction"]  # inversion + the source prompt gives the rendered image back, better from later k
        late = max(rec)
        assert late > 0 and rec[late]["preservation"] >= 0.75 and rec[late]["psnr"] > 23.5, rec
        assert rec[late]["ssim"] > 0.83, rec
        assert rec[late]["psnr"] > rec[0]["psnr"] + 4.0, rec
    table = edit_report.table(results)
    assert "| colour | regenerate (k=0) |" in table and "| colour | tau 0.5 |" in table
    for r in results:  # the per-seed rule: each seed's k is the latest step its judged edit takes
        assert r["generated"]["PCI, latest yes (per seed)"]["success"] >= r["generated"]["regenerate (k=0)"]["success"]
        assert len(r["per_seed_k"]["generated"]) == len(r["per_seed_k"]["inputs"]) == 4
    assert "| colour | latest yes (per seed) |" in table
