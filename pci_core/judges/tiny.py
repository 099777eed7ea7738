"""Tiny random-init judge models, built and saved here (no download), for tests, benchmarks and a
smoke test of a judge install: an open_clip config of a few thousand parameters and a two-layer
Qwen2.5-VL with a word-level tokenizer. They load through load_judge like real weights."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

TINY_CLIP = "pci-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
VQA_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>"]
VQA_WORDS = ["[UNK]", "yes", "no", "Yes", "No", "is", "the", "red", "circle", "visible", "in", "image", "?",
             "answer", "or", ".", "user", "assistant"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def register_tiny_clip(folder: Path) -> str:
    """Make open_clip know the tiny architecture (a config file in folder); returns its name."""
    import open_clip
    config = Path(folder) / "configs" / f"{TINY_CLIP}.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(config)
    return TINY_CLIP


def save_clip(arch: str, folder: Path, logit_scale: float | None = None, also_pt: bool = False) -> Path:
    """A random-init open_clip model of architecture arch (seed 0) saved as folder/<arch>.safetensors
    (and <arch>.pt, a plain state dict, when also_pt)."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model(arch, pretrained=None)
    if logit_scale is not None:
        with torch.no_grad():
            model.logit_scale.fill_(float(torch.tensor(logit_scale).log()))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = Path(folder) / f"{arch}.safetensors"
    save_file(state, str(path))
    if also_pt:
        torch.save(state, path.with_suffix(".pt"))
    return path


def save_tiny_vqa(folder: Path, words: Sequence[str] = VQA_WORDS) -> Path:
    """A Qwen2.5-VL of a few thousand parameters with a word-level tokenizer over words and Qwen's image
    processor, saved as a transformers model folder folder/tiny-qwen2.5-vl (seed 0)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                              Qwen2_5_VLProcessor, Qwen2VLImageProcessor)
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    vocab = {t: i for i, t in enumerate(dict.fromkeys(VQA_SPECIAL + list(words)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="<|endoftext|>",
                                        eos_token="<|im_end|>", additional_special_tokens=VQA_SPECIAL[1:])
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56),
                                    tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(),
                                    chat_template=CHAT_TEMPLATE)
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 4]},
                         bos_token_id=vocab["<|endoftext|>"], eos_token_id=vocab["<|im_end|>"],
                         pad_token_id=vocab["<|endoftext|>"]),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           fullatt_block_indexes=[1], window_size=56),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"])
    torch.manual_seed(0)
    path = Path(folder) / "tiny-qwen2.5-vl"
    Qwen2_5_VLForConditionalGeneration(config).eval().save_pretrained(path)
    processor.save_pretrained(path)
    return path
