"""A clip is one trial (issue 28): a judge's verdict on a video model's clip (B, F, H, W, 3) comes from its
frames, `clip_frames` of them evenly spaced, combined by its `clip_rule`. Each rule against frame scores
computed by hand."""
import pytest
import torch

from pci_core import judges
from pci_core.judges.base import Judge


class FrameJudge(Judge):
    """Scores each frame by its mean brightness, so a test writes the frame scores it wants as pixels."""
    name = "frames"

    def _score(self, images, concept, contrast):
        return images.mean(dim=(1, 2, 3))


def clips(*frame_scores):
    """Clips whose frame f has every pixel at frame_scores[b][f]."""
    return torch.tensor(frame_scores, dtype=torch.float32)[:, :, None, None, None].expand(-1, -1, 4, 4, 3).clone()


@pytest.mark.parametrize("rule, expected", [
    ("mean", [(0.1 + 0.9 + 0.6 + 0.2 + 0.7) / 5, (0.5 + 0.5 + 0.4 + 0.9 + 0.8) / 5]),
    ("share of yes", [3 / 5, 4 / 5]),   # frames with score >= 0.5: 0.9, 0.6, 0.7 | 0.5, 0.5, 0.9, 0.8
    ("least", [0.1, 0.4]),
    ("most", [0.9, 0.9]),
])
def test_each_rule_against_frame_scores_by_hand(rule, expected):
    judge = FrameJudge().set_clip_rule(rule, 0)  # every frame
    got = judge.score(clips([0.1, 0.9, 0.6, 0.2, 0.7], [0.5, 0.5, 0.4, 0.9, 0.8]), "x")
    assert got.shape == (2,) and torch.allclose(got, torch.tensor(expected), atol=1e-6)


def test_frames_are_sampled_evenly_with_the_first_and_last():
    assert judges.frame_indices(9, 3) == [0, 4, 8] and judges.frame_indices(9, 0) == list(range(9))
    assert judges.frame_indices(5, 8) == list(range(5)) and judges.frame_indices(9, 1) == [4]
    judge = FrameJudge().set_clip_rule("mean", 3)  # frames 0, 4, 8 of 9
    got = judge.score(clips([1.0, 0, 0, 0, 0.5, 0, 0, 0, 0.0]), "x")
    assert torch.allclose(got, torch.tensor([(1.0 + 0.5 + 0.0) / 3]))


def test_a_still_image_batch_is_judged_per_image_and_bad_rules_are_named():
    assert FrameJudge().score(torch.full((3, 4, 4, 3), 0.25), "x").tolist() == [0.25] * 3
    with pytest.raises(ValueError, match="clip_rule 'median'"):
        FrameJudge().set_clip_rule("median", 4)
    with pytest.raises(ValueError, match="clip_frames=-1"):
        FrameJudge().set_clip_rule("mean", -1)


def test_load_judge_keeps_one_judge_per_clip_rule_over_one_network(tmp_path):
    from pci_core.judges import tiny
    tiny.register_tiny_clip(tmp_path)
    weights = tiny.save_clip(tiny.TINY_CLIP, tmp_path)
    a = judges.load_judge("clip", tiny.TINY_CLIP, weights, clip_rule="least", clip_frames=4)
    b = judges.load_judge("clip", tiny.TINY_CLIP, weights)
    assert a is not b and a.net is b.net and (a.clip_rule, a.clip_frames) == ("least", 4) and b.clip_rule == "mean"
    assert judges.load_judge("clip", tiny.TINY_CLIP, weights, clip_rule="least", clip_frames=4) is a
