"""Video models (issue 28): a tiny random Wan 2.1 built from ComfyUI's own classes, clips of 2 latent frames
(5 video frames). A clip is one trial: a sweep branch equals Concept Insertion Sampler's clip bit for bit at
max_batch 1; CIS Sweep, CIS Study and Best Timestep Edit run through the nodes with one verdict per clip
(the judge's clip rule over the clip's frames), the grid's clips saved as animated WebP files."""
from pathlib import Path

import pytest
import torch

from pci_cluster.testbed.tiny_families import FAMILIES
from pci_core import study

STEPS = 4


@pytest.fixture(scope="module")
def wan(host):
    family = FAMILIES["wan21"](frames=2)
    return family, family.encode("a dog"), family.encode("a dog in the snow"), family.encode("")


@pytest.fixture()
def clip_judge(host, tiny_judge_files):
    """The tiny clip judge through PCI Judge Loader, one verdict per clip: the share of its 5 frames judged yes."""
    from pci_core.judges import tiny
    loader = host.nodes.NODE_CLASS_MAPPINGS["PCIJudgeLoader"]
    return loader.execute("clip", tiny.TINY_CLIP, "none (rule judge)", "auto", str(tiny_judge_files[0]), "",
                          "p(yes)", "share of yes", 0).args[0]


def test_a_clip_latent_decodes_to_one_clip_per_seed(host, inference, wan):
    family, *_ = wan
    latent = family.latent()
    assert latent["samples"].shape[2] == 2  # latent frames
    clips = host.glue("branching").decode(family.vae, latent["samples"].repeat(3, 1, 1, 1, 1))
    assert clips.ndim == 5 and clips.shape[:2] == (3, 5) and clips.shape[-1] == 3  # 4 (2 - 1) + 1 frames each


def test_a_sweep_branch_equals_the_nodes_clip_bit_for_bit(host, inference, wan):
    family, base, concept, neg = wan
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    Sampling, branching = host.glue("sampling").Sampling, host.glue("branching")
    seeds, ks = [1, 4], [0, 2, STEPS]
    single = torch.stack([torch.stack([node.execute(family.model, base, concept, neg, family.latent(), s, STEPS, 3.0,
                                                    "euler", "simple", float(k), 1.0).args[0]["samples"][0]
                                       for k in ks]) for s in seeds])
    swept, _ = branching.sweep_latents(Sampling(family.model, neg, STEPS, 3.0, "euler", "simple", 1), base, concept,
                                       family.latent(), seeds, ks)
    assert swept.shape == single.shape and swept.shape[3] == 2
    assert torch.equal(swept, single), (swept - single).abs().max().item()


def test_cis_sweep_gives_one_verdict_per_clip_and_saves_the_grids_clips(host, inference, wan, clip_judge, tmp_path):
    import folder_paths
    family, base, concept, neg = wan
    name = f"video-sweep-{tmp_path.name}"
    curve, grid, result, table, _ = host.nodes.NODE_CLASS_MAPPINGS["CISSweep"].execute(
        family.model, base, concept, neg, family.latent(), family.vae, clip_judge, "snow", 0, 2, "", "all", STEPS,
        3.0, "euler", "simple", 0.5, 0, False, name).args
    assert result.scores.shape == (2, STEPS + 1)  # one score per (seed, k) clip, not per frame
    shares = result.scores * 5  # "share of yes" over 5 frames: multiples of 1/5
    assert torch.allclose(torch.from_numpy(shares), torch.from_numpy(shares).round(), atol=1e-6)
    folder = Path(folder_paths.get_output_directory()) / "pci" / name
    assert result.settings["judge"].endswith("clips: share of yes of every frame(s), evenly spaced")
    clips = sorted(folder.glob("clips/*.webp"))
    assert len(clips) == 2 * (STEPS + 1)
    from PIL import Image
    with Image.open(clips[0]) as webp:
        assert webp.n_frames == 5
    assert grid.ndim == 4 and grid.shape[-1] == 3  # the timeline grid: cells of 3 frames side by side


def test_cis_study_and_best_timestep_edit_take_clips(host, inference, wan, clip_judge, tmp_path):
    family, base, concept, neg = wan
    listed = study.concept_list("a dog {}", "", "in the snow\non the moon")
    concepts = {"list": listed, "base": base,
                "concepts": [family.encode(c.prompt) for c in listed.concepts]}
    plot, table = host.nodes.NODE_CLASS_MAPPINGS["CISStudy"].execute(
        family.model, concepts, neg, family.latent(), 0, 2, "", STEPS, 3.0, "euler", "simple", family.vae, clip_judge,
        0.5, 0, f"video-study-{tmp_path.name}", False).args
    assert plot.shape[-1] == 3 and "in the snow" in table and "on the moon" in table
    edit = host.nodes.NODE_CLASS_MAPPINGS["BestTimestepEdit"]
    edited, source, k, _, explanation = edit.execute(
        family.model, base, concept, neg, family.latent(), 3, STEPS, 3.0, "euler", "simple", family.vae, "latest yes",
        0.5, 0.5, 2, 2, "snow", judge=clip_judge).args
    assert edited.shape[0] == 5 and source.shape[0] == 5  # a clip's frames, as VAEDecode gives them
    assert 0 <= k <= STEPS and "latest yes rule" in explanation
    video = edit.execute(family.model, base, concept, neg, family.latent(), 3, STEPS, 3.0, "euler", "simple",
                         family.vae, "fixed", 0.5, 0.5, 2, 2, "snow", image=source).args
    assert video[0].shape == source.shape and "input image: inverted" in video[4]
    with pytest.raises(ValueError, match="image has 4 frames; this video VAE encodes 1 \\+ 4n frames"):
        edit.execute(family.model, base, concept, neg, family.latent(), 3, STEPS, 3.0, "euler", "simple", family.vae,
                     "fixed", 0.5, 0.5, 2, 2, "snow", image=source[:4])
