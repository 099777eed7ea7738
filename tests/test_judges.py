"""Judges: the rule judge on rendered ground truth; CLIP and VQA plumbing on tiny random models built here
(no download, no hub); input checks and their messages; the loader's cache."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach the hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np
import pytest
import torch

from pci_core import judges
from pci_core.demo import world
from pci_core.judges import tiny
from pci_core.judges.clip import _tensor_preprocess
from pci_core.demo.rule_judge import RuleJudge

TINY_CLIP = tiny.TINY_CLIP


def random_images(n, h=40, w=48, seed=0):
    return torch.rand(n, h, w, 3, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- rule judge

@pytest.fixture(scope="module")
def rendered():
    images, attrs = world.render_batch(48, seed=7)
    return torch.from_numpy(images), attrs


def test_rule_judge_reads_every_attribute_value_on_rendered_images(rendered):
    images, attrs = rendered
    judge = RuleJudge()
    for attribute, values in world.ATTRIBUTES.items():
        for value in values:
            scores = judge.score(images, value)
            expected = torch.tensor([float(a[attribute] == value) for a in attrs])
            assert torch.equal(scores, expected), f"{attribute}={value}"


def test_rule_judge_full_prompts_and_wrong_ones(rendered):
    images, attrs = rendered
    judge = RuleJudge()
    for image, a in zip(images, attrs):
        assert judge.score(image, world.make_prompt(a)).item() == 1.0
        other = next(v for v in world.ATTRIBUTES["colour"] if v != a["colour"])
        assert judge.score(image, world.make_prompt({**a, "colour": other})).item() == 0.0


def test_rule_judge_refuses_non_square_images(rendered):
    images, _ = rendered
    with pytest.raises(ValueError, match=r"images: the rule judge reads the demo world's square images.*got 32x24"):
        RuleJudge().score(images[:, :, :24], "red")


def test_rule_judge_concept_errors(rendered):
    images, _ = rendered
    judge = RuleJudge()
    with pytest.raises(ValueError, match="names no demo-world attribute.*colour: red"):
        judge.score(images, "a photo of the shape")
    with pytest.raises(ValueError, match=r"concept: .*unknown word.*'purple'"):
        judge.score(images, "purple circle")


# ---------------------------------------------------------------- the interface: checks and thresholds

@pytest.mark.parametrize("images, message", [
    ([[0.0, 0.5, 1.0]], "got list"),
    (torch.rand(8, 8), "got shape \\(8, 8\\)"),
    (torch.rand(2, 3, 8, 8), "channel-first"),
    (torch.rand(2, 8, 8, 4), "last dimension must be the 3 RGB channels"),
    (torch.zeros(0, 8, 8, 3), "empty"),
    ((torch.rand(2, 8, 8, 3) * 255).to(torch.uint8), "dtype torch.uint8.*divide by 255"),
    (torch.rand(2, 8, 8, 3) * 2, "values in \\[.*\\]"),
    (torch.full((1, 8, 8, 3), float("nan")), "NaN"),
])
def test_non_image_inputs_are_refused_with_what_is_expected(images, message):
    with pytest.raises(ValueError, match=r"images: expected ComfyUI IMAGE.*" + message):
        RuleJudge().score(images, "red")


def test_numpy_and_single_images_are_accepted(rendered):
    images, attrs = rendered
    judge = RuleJudge()
    assert judge.score(images[0].numpy(), attrs[0]["shape"]).shape == (1,)
    assert judge.score(images[:3].numpy(), "red").shape == (3,)


@pytest.mark.parametrize("concept", ["", "   ", None, 3])
def test_empty_or_non_text_concept_is_refused(concept):
    with pytest.raises(ValueError, match="concept"):
        RuleJudge().score(torch.rand(1, 8, 8, 3), concept)


def test_threshold_semantics():
    judge = RuleJudge()
    scores = torch.tensor([0.2, 0.5, 0.7, 1.0])
    assert judge.decide(scores).tolist() == [False, True, True, True]  # a score at the threshold is a yes
    assert judge.decide(scores, 0.7).tolist() == [False, False, True, True]
    assert judge.decide(scores, 0.0).all()
    assert judge.decide(scores, 1.0).tolist() == [False, False, False, True]
    assert judge.decide(scores).dtype == torch.bool
    for bad in (1.5, -0.1, True, "0.5", float("nan")):
        with pytest.raises(ValueError, match=r"threshold .*expected a number in \[0, 1\]"):
            judge.decide(scores, bad)


def test_unknown_backend_and_device_are_refused():
    with pytest.raises(ValueError, match="judge backend 'dalle': valid backends are clip, vqa"):
        judges.load_judge("dalle")
    with pytest.raises(ValueError, match="device 'gpu0'"):
        judges.load_judge("clip", device="gpu0")
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last CUDA device: absent on every machine
    with pytest.raises(ValueError, match=f"device '{missing}': this machine has no such device; available: cpu"):
        judges.load_judge("vqa", device=missing)


class _LogitJudge(judges.Judge):
    """A broken backend: returns what it is given as the scores (logits, NaN, the wrong shape)."""
    name = "logit"

    def __init__(self, raw):
        self.raw = raw

    def _score(self, images, concept, contrast):
        return self.raw


@pytest.mark.parametrize("raw, message", [
    (torch.tensor([2.3, -0.7]), r"2 score\(s\) outside \[0, 1\] \(e.g. 2.3\).*not logits"),
    (torch.tensor([0.5, float("nan")]), r"1 score\(s\) outside \[0, 1\] \(e.g. nan\)"),
    (torch.tensor([0.5, 1.0 + 1e-6]), r"1 score\(s\) outside \[0, 1\]"),
    (torch.tensor([0.5]), r"scores of shape \(1,\) for 2 images"),
])
def test_a_backend_returning_scores_outside_0_1_fails_loudly(raw, message):
    """No clamp anywhere: a backend's logits or NaN would otherwise pass as confident 0s and 1s."""
    with pytest.raises(RuntimeError, match="the logit judge .*" + message):
        _LogitJudge(raw).score(torch.rand(2, 8, 8, 3), "red")
    assert torch.equal(_LogitJudge(torch.tensor([0.0, 1.0])).score(torch.rand(2, 8, 8, 3), "red"),
                       torch.tensor([0.0, 1.0]))  # the edges themselves are valid scores, passed unchanged


def test_summary_and_annotation():
    scores = torch.tensor([0.98, 0.91, 0.12, 0.99])
    decisions = judges.decide(scores, 0.5)
    assert judges.summarize("red", scores, decisions, 0.5) == \
        "3/4 images show 'red' (threshold 0.50); scores 0.98 0.91 0.12 0.99"
    images = torch.full((4, 64, 80, 3), 0.5)
    annotated = judges.annotate(images, scores, decisions)
    assert annotated.shape == images.shape and annotated.dtype == torch.float32
    assert 0 <= annotated.min() and annotated.max() <= 1
    assert torch.equal(annotated[:, 20:], images[:, 20:])  # only the bar at the top is drawn on
    green, red = annotated[0, 0, 0], annotated[2, 0, 0]  # bar starts at the left edge
    assert green[1] > green[0] and red[0] > red[1]


# ---------------------------------------------------------------- clip judge on a tiny random open_clip model

@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pci_judges")
    tiny.register_tiny_clip(folder)
    path = tiny.save_clip(TINY_CLIP, folder, logit_scale=30.0, also_pt=True)
    path.rename(folder / "tiny.safetensors")
    path.with_suffix(".pt").rename(folder / "tiny.pt")
    return folder


@pytest.fixture(scope="module")
def clip_judge(clip_dir):
    return judges.load_judge("clip", model=TINY_CLIP, weights="tiny.safetensors", search_dirs=[clip_dir])


def test_clip_loads_the_saved_weights(clip_dir, clip_judge):
    from safetensors.torch import load_file

    saved = load_file(str(clip_dir / "tiny.safetensors"))
    loaded = clip_judge.model.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    from_pt = judges.load_judge("clip", model=TINY_CLIP, weights=str(clip_dir / "tiny.pt"))
    images = random_images(2)
    assert torch.allclose(from_pt.score(images, "a red circle"), clip_judge.score(images, "a red circle"))


def test_clip_scores_shape_range_and_batching(clip_judge):
    images = random_images(5)
    batch = clip_judge.score(images, "a red circle", "a blue square")
    assert batch.shape == (5,) and batch.dtype == torch.float32
    assert ((0 <= batch) & (batch <= 1)).all()
    single = torch.cat([clip_judge.score(im, "a red circle", "a blue square") for im in images])
    assert torch.allclose(batch, single, atol=1e-5)
    # the images are told apart (measured: std 0.041, sorted scores 0.016 apart or more) and the score is the
    # concept's share of the two texts: swapping them gives 1 - score (measured: 1.2e-7 off)
    assert batch.std() > 0.02 and batch.sort().values.diff().min() > 0.005, batch
    assert torch.allclose(clip_judge.score(images, "a blue square", "a red circle"), 1 - batch, atol=1e-5)


def test_clip_raw_backend_scores_lie_in_0_1_and_are_what_score_returns(clip_judge):
    """The backend's own output, before the interface's range check, is a probability."""
    images = random_images(6, seed=9)
    with torch.no_grad():
        raw = clip_judge._score(images, "a red circle", "a blue square")
    assert raw.shape == (6,) and torch.isfinite(raw).all() and ((0 < raw) & (raw < 1)).all()
    assert torch.equal(clip_judge.score(images, "a red circle", "a blue square"), raw.float().cpu())


def test_clip_swapped_concept_and_contrast_sum_to_one(clip_judge):
    images = random_images(4, seed=1)
    forward = clip_judge.score(images, "a red circle", "a blue square")
    swapped = clip_judge.score(images, "a blue square", "a red circle")
    assert torch.allclose(forward + swapped, torch.ones(4), atol=1e-6)
    # no contrast (or a blank one) means "a photo"
    assert torch.allclose(clip_judge.score(images, "red"), clip_judge.score(images, "red", "a photo"))
    assert torch.allclose(clip_judge.score(images, "red", "  "), clip_judge.score(images, "red", "a photo"))
    # a concept told from itself is a coin flip
    assert torch.allclose(clip_judge.score(images, "red", "red"), torch.full((4,), 0.5))


def test_clip_matches_open_clip_pil_pipeline(clip_judge):
    """The tensor preprocessing is open_clip's own: same score as its PIL transform (up to uint8 rounding)."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from PIL import Image

    images = random_images(3, h=40, w=56, seed=2)
    cfg = PreprocessCfg(**open_clip.get_model_preprocess_cfg(clip_judge.model))
    transform = image_transform_v2(cfg, is_train=False)
    pixels = torch.stack([transform(Image.fromarray((im.numpy() * 255).round().astype(np.uint8)))
                          for im in images])
    model = clip_judge.model
    with torch.no_grad():
        image_emb = model.encode_image(pixels, normalize=True)
        tokens = open_clip.get_tokenizer(TINY_CLIP)(["a photo of red.", "a photo of green."])
        text_emb = model.encode_text(tokens, normalize=True)
        expected = (model.logit_scale.exp() * image_emb @ text_emb.T).softmax(-1)[:, 0]
    assert torch.allclose(clip_judge.score(images, "red", "green"), expected, atol=2e-3)


@pytest.mark.parametrize("cfg", [{"size": 32}, {"size": (32, 48)}, {"size": 40, "resize_mode": "longest"},
                                 {"size": (24, 32), "resize_mode": "squash", "interpolation": "bilinear"}])
def test_tensor_preprocessing_follows_open_clip_transform(cfg):
    """Every resize mode of open_clip's eval transform, batched on tensors, against its PIL pipeline."""
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from PIL import Image

    images = random_images(2, h=45, w=60, seed=5)
    pil = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
    expected = torch.stack([pil(Image.fromarray((im.numpy() * 255).round().astype(np.uint8))) for im in images])
    got = _tensor_preprocess(cfg)(images.permute(0, 3, 1, 2))
    assert got.shape == expected.shape
    assert (got - expected).abs().mean() < 0.02  # PIL and torch resample a little differently (and uint8)


def test_clip_templates_average_normalised_embeddings(clip_dir):
    import open_clip

    templates = ["a photo of {}.", "a drawing of {}"]
    judge = judges.load_judge("clip", model=TINY_CLIP, weights="tiny.safetensors", search_dirs=[clip_dir],
                              templates=templates)
    with torch.no_grad():
        tokens = open_clip.get_tokenizer(TINY_CLIP)(["a photo of red.", "a drawing of red"])
        mean = judge.model.encode_text(tokens, normalize=True).mean(0)
    assert torch.allclose(judge.text_embedding("red"), mean / mean.norm(), atol=1e-6)
    assert "red" in judge._text_cache  # cached
    with pytest.raises(ValueError, match="clip prompt templates: each must be a string containing '{}'"):
        judges.load_judge("clip", model=TINY_CLIP, weights="tiny.safetensors", search_dirs=[clip_dir],
                          templates=["a photo"])


def test_clip_cache_returns_the_same_object(clip_dir, clip_judge):
    again = judges.load_judge("clip", model=TINY_CLIP, weights="tiny.safetensors", search_dirs=[clip_dir])
    assert again is clip_judge
    by_path = judges.load_judge("clip", model=TINY_CLIP, weights=str(clip_dir / "tiny.safetensors"))
    assert by_path is clip_judge  # same file, same key
    other = judges.load_judge("clip", model=TINY_CLIP, weights="tiny.safetensors", search_dirs=[clip_dir],
                              templates=["{}"])
    assert other is not clip_judge


def test_clip_missing_weights_names_file_and_folder(clip_dir, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        judges.load_judge("clip", model=TINY_CLIP, weights="missing.safetensors", search_dirs=[clip_dir])
    assert "'missing.safetensors'" in str(e.value) and str(clip_dir) in str(e.value)
    absent = tmp_path / "nowhere" / "vit.safetensors"
    with pytest.raises(FileNotFoundError) as e:
        judges.load_judge("clip", model=TINY_CLIP, weights=str(absent))
    assert "'vit.safetensors'" in str(e.value) and str(absent.parent) in str(e.value)
    assert "does not exist" in str(e.value)
    with pytest.raises(ValueError, match="clip judge: give weights"):
        judges.load_judge("clip", model=TINY_CLIP, weights="")


def test_clip_bad_architecture_or_weights(clip_dir, tmp_path):
    with pytest.raises(ValueError, match="'ViT-B-99': not an open_clip architecture.*list_models"):
        judges.load_judge("clip", model="ViT-B-99", weights="tiny.safetensors", search_dirs=[clip_dir])
    with pytest.raises(ValueError, match="not a hub or folder reference"):
        judges.load_judge("clip", model="hf-hub:org/model", weights="tiny.safetensors", search_dirs=[clip_dir])
    from safetensors.torch import save_file
    save_file({"visual.proj": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    fit = f"do not fit architecture '{TINY_CLIP}': .* missing keys .*another shape.*visual.proj \\(3, 3\\) vs \\(32, 16\\)"
    with pytest.raises(ValueError, match=fit):
        judges.load_judge("clip", model=TINY_CLIP, weights=str(tmp_path / "other.safetensors"))


class _NotATensor:
    pass


def test_clip_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": _NotATensor()}}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        judges.load_judge("clip", model=TINY_CLIP, weights=str(path))


# ---------------------------------------------------------------- vqa judge on a tiny random Qwen2.5-VL

@pytest.fixture(scope="module")
def vqa_dir(tmp_path_factory):
    """A Qwen2.5-VL of a few thousand parameters, with a word-level tokenizer and Qwen's image processor."""
    return tiny.save_tiny_vqa(tmp_path_factory.mktemp("pci_judges_vqa"))


@pytest.fixture(scope="module")
def vqa_judge(vqa_dir):
    return judges.load_judge("vqa", weights=vqa_dir.name, search_dirs=[vqa_dir.parent], batch_size=4)


def test_vqa_scores_shape_range_and_batching(vqa_judge):
    assert type(vqa_judge.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    images = random_images(6, h=32, w=32, seed=3)
    batch = vqa_judge.score(images, "red circle")  # batch_size 4: two chunks
    assert batch.shape == (6,) and batch.dtype == torch.float32
    assert ((0 <= batch) & (batch <= 1)).all()
    single = torch.cat([vqa_judge.score(im, "red circle") for im in images])
    assert torch.allclose(batch, single, atol=1e-5)
    # the images are told apart (measured: std 0.0023, sorted scores 4.4e-4 apart or more) and the question
    # matters (measured: every image's score moves by 0.0034 or more on "blue square")
    assert batch.std() > 0.001 and batch.sort().values.diff().min() > 1e-4, batch
    assert ((batch - vqa_judge.score(images, "blue square")).abs() > 1e-3).all()


def test_vqa_raw_backend_scores_lie_in_0_1_and_are_what_score_returns(vqa_judge):
    images = random_images(3, h=32, w=32, seed=6)
    with torch.no_grad():
        raw = vqa_judge._score(images, "red circle", None)
    assert raw.shape == (3,) and torch.isfinite(raw).all() and ((0 < raw) & (raw < 1)).all()
    assert torch.equal(vqa_judge.score(images, "red circle"), raw.float().cpu())


def test_vqa_score_is_p_yes_from_the_answer_logits(vqa_judge):
    """Recomputed by hand: softmax over logsumexp('yes','Yes') and logsumexp('no','No') next-token logits."""
    tokenizer = vqa_judge.processor.tokenizer
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "Yes"]), tokenizer.convert_tokens_to_ids(["no", "No"])
    assert sorted(vqa_judge.yes_ids) == sorted(yes) and sorted(vqa_judge.no_ids) == sorted(no)
    images = random_images(2, h=32, w=32, seed=4)
    prompt = vqa_judge.prompt("red circle")
    assert "Is the red circle visible in the image? Answer yes or no." in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    inputs = vqa_judge.processor(text=[prompt] * 2, images=list(images.permute(0, 3, 1, 2)), return_tensors="pt",
                                 do_rescale=False)
    with torch.no_grad():
        logits = vqa_judge.model(**inputs).logits[:, -1]
    p = logits.softmax(-1)
    expected = p[:, yes].sum(-1) / (p[:, yes].sum(-1) + p[:, no].sum(-1))
    assert torch.allclose(vqa_judge.score(images, "red circle"), expected, atol=1e-5)


def test_vqa_question_template_and_cache(vqa_dir, vqa_judge):
    assert judges.load_judge("vqa", weights=vqa_dir.name, search_dirs=[vqa_dir.parent], batch_size=4) is vqa_judge
    custom = judges.load_judge("vqa", weights=str(vqa_dir), question="Does the image show a {concept}?")
    assert custom is not vqa_judge
    assert "Does the image show a red circle?" in custom.prompt("red circle")
    with pytest.raises(ValueError, match="vqa question template: each must be a string containing '{concept}'"):
        judges.load_judge("vqa", weights=str(vqa_dir), question="Is it red?")


def test_vqa_missing_model_folder_names_it_and_where(vqa_dir, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        judges.load_judge("vqa", weights="Qwen2.5-VL-3B-Instruct", search_dirs=[vqa_dir.parent])
    assert "model folder 'Qwen2.5-VL-3B-Instruct'" in str(e.value) and str(vqa_dir.parent) in str(e.value)
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(FileNotFoundError) as e:
        judges.load_judge("vqa", weights=str(tmp_path / "empty-model"))
    assert "'config.json'" in str(e.value) and str(tmp_path / "empty-model") in str(e.value)


def test_clip_load_does_not_log_random_init(clip_dir, caplog):
    """open_clip warns 'initialized randomly' before the file's weights are loaded; that would mislead."""
    judges.load_judge("clip", model=TINY_CLIP, weights="tiny.safetensors", search_dirs=[clip_dir],
                      templates=["an image of {}"])
    assert "initialized randomly" not in caplog.text


def test_judge_libraries_are_optional_extras_imported_only_inside_their_backends():
    """pyproject says what the code does: open_clip and transformers are the clip / vqa extras, and no
    module imports them at load time (only inside the backend that needs them)."""
    import ast
    from pathlib import Path
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    repo = Path(__file__).resolve().parents[1]
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    required = " ".join(project["dependencies"])
    assert "open_clip" not in required and "transformers" not in required and "tqdm" not in required
    extras = project["optional-dependencies"]
    assert any(d.startswith("open_clip_torch") for d in extras["clip"])
    assert any(d.startswith("transformers") for d in extras["vqa"])
    for path in [*(repo / "pci_core").rglob("*.py"), *(repo / "nodes").glob("*.py")]:
        for node in ast.parse(path.read_text()).body:  # module level only
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in ("open_clip", "transformers", "tqdm") for n in names), path
