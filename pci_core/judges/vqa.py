"""vqa: a transformers vision-language model (e.g. Qwen2.5-VL) asked a yes/no question; the score is
P(yes) from the next-token logits of the answer tokens, not a parsed string. transformers is
imported only here."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Sequence

import torch

from .base import DEFAULT_VQA_QUESTION, NO_WORDS, YES_WORDS, Judge, check_device, check_templates, require


def answer_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """Ids of the spellings of an answer that are a single token (unknown-token ids left out)."""
    ids = []
    for word in words:
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] != tokenizer.unk_token_id and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids


class VqaJudge(Judge):
    """P(yes) = softmax over (logsumexp of 'yes' token logits, logsumexp of 'no' token logits)."""

    name = "vqa"

    def __init__(self, model, processor, question: str = DEFAULT_VQA_QUESTION,
                 device: str | torch.device = "cpu", batch_size: int = 8, folder: str = "?"):
        self.device = check_device(device)
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.question = check_templates(question, "{concept}", "vqa question template")[0]
        self.batch_size = int(batch_size)
        self.folder = folder
        processor.tokenizer.padding_side = "left"  # the answer's logits are then at position -1 in every row
        yes, no = answer_token_ids(processor.tokenizer, YES_WORDS), answer_token_ids(processor.tokenizer, NO_WORDS)
        if not yes or not no or set(yes) & set(no):
            raise ValueError(f"vqa judge {folder!r}: its tokenizer has no single token for "
                             f"{'yes' if not yes else 'no'} (tried {YES_WORDS if not yes else NO_WORDS})")
        self.yes_ids, self.no_ids = yes, no
        self._last_only = "logits_to_keep" in inspect.signature(model.forward).parameters

    def describe(self) -> str:
        return f"vqa {self.folder} on {self.device}, question {self.question!r}"

    def prompt(self, concept: str) -> str:
        """The model's chat-formatted question (one image, then the text), ready for its answer."""
        question = self.question.replace("{concept}", concept)
        if getattr(self.processor, "chat_template", None) is None:
            return question  # processors without a chat template place the image tokens themselves
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _score(self, images, concept, contrast):
        prompt = self.prompt(concept)
        dtype = next(self.model.parameters()).dtype
        extra = {"logits_to_keep": 1} if self._last_only else {}
        out = []
        for chunk in images.split(self.batch_size):
            inputs = self.processor(text=[prompt] * len(chunk), images=list(chunk.permute(0, 3, 1, 2)),
                                    return_tensors="pt", padding=True, do_rescale=False)  # already in [0, 1]
            inputs = inputs.to(device=self.device, dtype=dtype)
            logits = self.model(**inputs, use_cache=False, **extra).logits[:, -1].float()
            answers = torch.stack([logits[:, self.yes_ids].logsumexp(-1), logits[:, self.no_ids].logsumexp(-1)], -1)
            out.append(answers.softmax(dim=-1)[:, 0])
        return torch.cat(out)


def build_vqa_judge(folder: Path, device: str | torch.device = "cpu", question: str = DEFAULT_VQA_QUESTION,
                    dtype: str | torch.dtype | None = None, batch_size: int = 8) -> VqaJudge:
    """A VqaJudge from a local transformers model folder (config, weights, processor and tokenizer files)."""
    transformers = require("transformers", "transformers", "vqa")
    AutoModelForImageTextToText, AutoProcessor = transformers.AutoModelForImageTextToText, transformers.AutoProcessor

    device = check_device(device)
    if dtype is None:  # float32 on the CPU (bf16 matmuls are slow there); the checkpoint's dtype elsewhere
        dtype = torch.float32 if device.type == "cpu" else "auto"
    elif isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
    return VqaJudge(model, processor, question, device, batch_size, folder.name)
