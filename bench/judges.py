"""Judge throughput on this machine: images/s per backend at batch 1 and batch 32, side by side in one run.

    python bench/judges.py [--device cpu] [--threads N] [--seconds 1] [--rounds 3]

Models are random-init and built here (no download): rule; clip on a tiny open_clip config and on ViT-B-32
(the realistic size: 224 px, 88 M parameters); vqa on a tiny Qwen2.5-VL. Every model goes through
load_judge from a saved file, as in use. Images are demo-world renders (32 x 32, the clip and vqa judges
resize them to their own input size). Text embeddings are cached after the first call, as in use.
setup s: building the random model, saving it and load_judge.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from pci_core import judges, world  # noqa: E402

TINY_CLIP = "pci-bench-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def save_clip(arch: str, folder: Path) -> Path:
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model(arch, pretrained=None)
    path = folder / f"{arch}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def save_tiny_vqa(folder: Path) -> Path:
    """A tiny random Qwen2.5-VL with a word-level tokenizer and Qwen's image processor (as tests build it)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                              Qwen2_5_VLProcessor, Qwen2VLImageProcessor)
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>"]
    vocab = {t: i for i, t in enumerate(special + ["[UNK]", "yes", "no", "Yes", "No"] + list(world.VOCABULARY))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="<|endoftext|>",
                                        eos_token="<|im_end|>", additional_special_tokens=special[1:])
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
                "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56),
                                    tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(),
                                    chat_template=template)
    ids = {name: vocab[token] for name, token in (("pad", "<|endoftext|>"), ("eos", "<|im_end|>"))}
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 4]},
                         bos_token_id=ids["pad"], eos_token_id=ids["eos"], pad_token_id=ids["pad"]),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           fullatt_block_indexes=[1], window_size=56),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"])
    torch.manual_seed(0)
    path = folder / "tiny-qwen2.5-vl"
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


def images_per_second(judge: judges.Judge, images: torch.Tensor, batch: int, seconds: float) -> float:
    """Throughput scoring `batch` images per call; one warm-up call, then calls until `seconds` have passed."""
    judge.score(images[:batch], "a large red circle", "a shape")
    starts = range(0, len(images) - batch + 1, batch)
    done, start = 0, time.perf_counter()
    for call in itertools.count():
        i = starts[call % len(starts)]
        judge.score(images[i:i + batch], "a large red circle", "a shape")
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum timed seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per judge and batch; the best is shown")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import open_clip

    folder = Path(tempfile.mkdtemp(prefix="pci_bench_judges_"))
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(folder / f"{TINY_CLIP}.json")
    candidates = {
        "rule": lambda: judges.load_judge("rule", device=args.device),
        "clip tiny (32 px)": lambda: judges.load_judge("clip", model=TINY_CLIP, weights=save_clip(TINY_CLIP, folder),
                                                       device=args.device),
        "clip ViT-B-32 (224 px)": lambda: judges.load_judge("clip", model="ViT-B-32",
                                                            weights=save_clip("ViT-B-32", folder), device=args.device),
        "vqa tiny Qwen2.5-VL": lambda: judges.load_judge("vqa", weights=save_tiny_vqa(folder), device=args.device),
    }
    images = torch.from_numpy(world.render_batch(64, seed=0)[0])
    loaded, setup_s = {}, {}
    for name, load in candidates.items():
        start = time.perf_counter()
        loaded[name] = load()
        setup_s[name] = time.perf_counter() - start
    # Rounds interleave the judges, so a burst of other load on the machine hits all of them; best of rounds.
    best = {(name, batch): 0.0 for name in loaded for batch in (1, 32)}
    for _ in range(args.rounds):
        for name, judge in loaded.items():
            for batch in (1, 32):
                best[name, batch] = max(best[name, batch], images_per_second(judge, images, batch, args.seconds))
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
          f"images {tuple(images.shape[1:3])}, best of {args.rounds} rounds of >= {args.seconds:g} s")
    print(f"{'judge':<24} {'setup s':>8} {'batch 1 img/s':>14} {'batch 32 img/s':>15}")
    for name in loaded:
        print(f"{name:<24} {setup_s[name]:>8.2f} {best[name, 1]:>14.1f} {best[name, 32]:>15.1f}")


if __name__ == "__main__":
    main()
