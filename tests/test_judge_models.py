"""Judge networks: one per weights file whatever the templates; open_clip's published folder layout loads as
it is; the VQA judge's official protocol is the paper runner's (tiny random models built here)."""
import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach the hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest
import torch

from pci_core import judges
from pci_core.judges import tiny
from pci_core.judges.vqa import OFFICIAL_INSTRUCTION


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    tiny.register_tiny_clip(folder)
    return tiny.save_clip(tiny.TINY_CLIP, folder, logit_scale=30.0)


def images(n, seed=0, size=32):
    return torch.rand(n, size, size, 3, generator=torch.Generator().manual_seed(seed))


def test_one_network_per_weights_file_whatever_the_templates(clip_file):
    a = judges.load_judge("clip", model=tiny.TINY_CLIP, weights=str(clip_file), templates=["a photo of {}."])
    b = judges.load_judge("clip", model=tiny.TINY_CLIP, weights=str(clip_file), templates=["a drawing of {}"])
    assert a is not b and a.net is b.net and a.model is b.model
    assert judges.load_judge("clip", model=tiny.TINY_CLIP, weights=str(clip_file), templates=["a photo of {}."]) is a
    assert not torch.equal(a.text_embedding("red"), b.text_embedding("red"))  # each judge its own templates
    half = judges.load_judge("clip", model=tiny.TINY_CLIP, weights=str(clip_file), dtype=torch.bfloat16)
    assert half.net is not a.net and half.net.dtype == torch.bfloat16 and a.net.dtype == torch.float32


def test_a_host_places_the_network_before_every_batch(clip_file):
    judge = judges.load_judge("clip", model=tiny.TINY_CLIP, weights=str(clip_file), templates=["{} placed"],
                              offload="cpu")
    calls = []
    judge.net.placement = lambda: calls.append(1) or torch.device("cpu")
    judge.batch_size = 2
    judge.score(images(5), "a red circle")
    assert len(calls) == 3 + 2  # three image chunks and two texts (concept, contrast)


def test_clip_loads_a_folder_as_open_clip_publishes_it(clip_file, tmp_path):
    """open_clip's Hugging Face layout (open_clip_config.json + open_clip_model.safetensors) loads as it is,
    the architecture read from the config: the same scores as the file loaded with its architecture name."""
    folder = tmp_path / "CLIP-tiny-published"
    folder.mkdir()
    (folder / "open_clip_model.safetensors").write_bytes(clip_file.read_bytes())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": tiny.TINY_CLIP_CONFIG,
                                                              "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}}))
    named = judges.load_judge("clip", model=tiny.TINY_CLIP, weights=str(clip_file))
    published = judges.load_judge("clip", model="", weights=folder.name, search_dirs=[tmp_path])
    assert published.net.arch.startswith("local-dir:")
    assert torch.equal(published.text_embedding("red"), named.text_embedding("red"))
    assert not torch.allclose(published.score(images(2), "red"), named.score(images(2), "red"))  # its own preprocess
    same = judges.load_judge("clip", model="", weights=str(folder / "open_clip_model.safetensors"))
    assert same.net is published.net  # the file in the folder is the folder
    (folder / "open_clip_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has open_clip_config.json but no weights file"):
        judges.load_judge("clip", model="", weights=str(folder))
    with pytest.raises(ValueError, match="give the open_clip architecture"):
        judges.load_judge("clip", model="", weights=str(clip_file))


QUESTION = "Is the red circle visible in the image? Answer yes or no."


@pytest.fixture(scope="module")
def decisive_vqa(tmp_path_factory):
    """The official judge over a tiny random Qwen2.5-VL whose vocabulary has the letters A and B, and whose
    output layer can only prefer one of them, along the direction its last hidden state moves between
    the test images (every other token's logit is 0): its greedy answer is A for some images, not for others."""
    folder = tiny.save_tiny_vqa(tmp_path_factory.mktemp("vqa"), words=[*tiny.VQA_WORDS, "A", "B", "=", "YES", "NO"])
    judge = judges.load_judge("vqa", weights=str(folder), protocol="official")
    vocab = judge.processor.tokenizer.get_vocab()
    seen = []
    hook = judge.model.lm_head.register_forward_hook(lambda m, args, out: seen.append(args[0][0, -1].clone()))
    for image in images(12, seed=3):
        with torch.no_grad():
            judge.model(**judge._inputs(image[None], judge.prompt("red circle"), "cpu"))
    hook.remove()
    hidden = torch.stack(seen)
    mean, direction = hidden.mean(0), hidden[0] - hidden.mean(0)
    with torch.no_grad():
        head = judge.model.lm_head.weight
        head.zero_()
        head[vocab["A"]] = 1e4 * direction
        head[vocab["B"]] = 1e4 * (direction @ mean) / (mean @ mean) * mean
    return judge


def official_runner(judge, image: torch.Tensor, question: str) -> float:
    """The runner's ask() (pci/core/vqa.py), written out: one user message with the image then the
    instruction and question, greedy generation of one token, first character upper-cased, A = yes."""
    from PIL import Image
    instruction = "Answer the question by replying with exactly one letter.\nA = YES\nB = NO\n\nReply with only A or B."
    messages = [{"role": "user", "content": [{"type": "image"},
                                             {"type": "text", "text": f"{instruction}\n\nQuestion: {question}\nAnswer:"}]}]
    text = judge.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    pil = Image.fromarray((image.numpy() * 255).round().astype("uint8"))
    inputs = judge.processor(text=[text], images=[pil], padding=True, return_tensors="pt")
    out = judge.model.generate(**inputs, max_new_tokens=1, do_sample=False, temperature=None,
                               return_dict_in_generate=True)
    raw = judge.processor.batch_decode(out.sequences[0, inputs.input_ids.shape[1]:], skip_special_tokens=True)[0]
    raw = raw.strip().upper()
    return 1.0 if (raw[0] if raw else "B") == "A" else 0.0


def test_vqa_official_protocol_is_the_paper_runners(decisive_vqa):
    judge = decisive_vqa
    assert judge.batch_size == 1  # as the runner: one image per call
    assert f"{OFFICIAL_INSTRUCTION}\n\nQuestion: {QUESTION}\nAnswer:" in judge.prompt("red circle")
    batch = images(12, seed=3)
    scores = judge.score(batch, "red circle")
    assert torch.equal(scores, torch.tensor([official_runner(judge, image, QUESTION) for image in batch]))
    assert 0 < scores.sum() < 12, scores  # both answers occur: the comparison is not one of constants
    folder = judge.net.module.name_or_path
    soft = judges.load_judge("vqa", weights=folder)
    assert soft.net is judge.net and soft.protocol == "p(yes)"  # one network, two protocols
    with pytest.raises(ValueError, match="vqa protocol 'guess': one of p\\(yes\\), official"):
        judges.load_judge("vqa", weights=folder, protocol="guess")
