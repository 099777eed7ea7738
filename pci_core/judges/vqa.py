"""vqa: a transformers vision-language model (e.g. Qwen2.5-VL) asked whether the image shows the concept,
by one of two protocols. transformers is imported only here.

- "p(yes)" (soft): the question as asked, the score is P(yes) from the next-token logits of the answer
  tokens "yes"/"no" (every one-token spelling), not a parsed string.
- "official" (the paper's judge, adagorgun/PCI-Prompt-Controlled-Interventions pci/core/vqa.py): the
  image first, then "Answer the question by replying with exactly one letter. A = YES / B = NO ... Reply
  with only A or B." with the question; greedy generation of one token (model.generate, as the runner);
  its first character upper-cased decides: A is yes (score 1), anything else no (score 0). Images are
  8-bit RGB, as the runner's pipelines hand their judge PIL images; batch 1, as the runner.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Sequence

import torch

from .base import DEFAULT_VQA_QUESTION, NO_WORDS, YES_WORDS, Judge, JudgeModel, check_device, check_templates, require

PROTOCOLS = ("p(yes)", "official")
OFFICIAL_INSTRUCTION = ("Answer the question by replying with exactly one letter.\n"
                        "A = YES\nB = NO\n\n"
                        "Reply with only A or B.")


def answer_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """Ids of the spellings of an answer that are a single token (unknown-token ids left out)."""
    ids = []
    for word in words:
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] != tokenizer.unk_token_id and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids


class VqaModel(JudgeModel):
    """A vision-language network with its processor and its yes/no answer tokens (shared by VqaJudges)."""

    def __init__(self, module, processor, device, folder: str = "?", offload=None):
        super().__init__(module, check_device(device), offload)
        self.processor, self.folder = processor, folder
        processor.tokenizer.padding_side = "left"  # the answer's logits are then at position -1 in every row
        yes, no = answer_token_ids(processor.tokenizer, YES_WORDS), answer_token_ids(processor.tokenizer, NO_WORDS)
        if not yes or not no or set(yes) & set(no):
            raise ValueError(f"vqa judge {folder!r}: its tokenizer has no single token for "
                             f"{'yes' if not yes else 'no'} (tried {YES_WORDS if not yes else NO_WORDS})")
        self.yes_ids, self.no_ids = yes, no
        self.last_only = "logits_to_keep" in inspect.signature(module.forward).parameters


class VqaJudge(Judge):
    """P(yes) = softmax over (logsumexp of 'yes' token logits, logsumexp of 'no' token logits); or, with the
    official protocol, 1 when the greedy one-token answer starts with A, else 0."""

    name = "vqa"

    def __init__(self, net: VqaModel, question: str = DEFAULT_VQA_QUESTION, batch_size: int = 8,
                 protocol: str = PROTOCOLS[0]):
        if protocol not in PROTOCOLS:
            raise ValueError(f"vqa protocol {protocol!r}: one of {', '.join(PROTOCOLS)}")
        self.net, self.protocol = net, protocol
        self.question = check_templates(question, "{concept}", "vqa question template")[0]
        self.batch_size = 1 if protocol == "official" else int(batch_size)

    model = property(lambda self: self.net.module)
    processor = property(lambda self: self.net.processor)
    yes_ids = property(lambda self: self.net.yes_ids)
    no_ids = property(lambda self: self.net.no_ids)

    def describe(self) -> str:
        return f"vqa {self.net.folder} on {self.net.device}, {self.protocol}, question {self.question!r}"

    def prompt(self, concept: str) -> str:
        """The model's chat-formatted question (one image, then the text), ready for its answer."""
        question = self.question.replace("{concept}", concept)
        if self.protocol == "official":
            question = f"{OFFICIAL_INSTRUCTION}\n\nQuestion: {question}\nAnswer:"
        if getattr(self.processor, "chat_template", None) is None:
            return question  # processors without a chat template place the image tokens themselves
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _inputs(self, chunk: torch.Tensor, prompt: str, device):
        if self.protocol == "official":  # 8-bit RGB, as the runner's pipelines decode to PIL
            chunk = (chunk * 255).round().to(torch.uint8)
        inputs = self.processor(text=[prompt] * len(chunk), images=list(chunk.permute(0, 3, 1, 2)),
                                return_tensors="pt", padding=True,
                                **({} if self.protocol == "official" else {"do_rescale": False}))  # [0, 1] already
        return inputs.to(device=device, dtype=self.net.dtype)

    def _score(self, images, concept, contrast):
        prompt = self.prompt(concept)
        out = []
        for chunk in images.split(self.batch_size):
            device = self.net.place()  # per chunk: a host may have moved the network in between
            inputs = self._inputs(chunk, prompt, device)
            if self.protocol == "official":
                out.append(self._official(inputs))
                continue
            extra = {"logits_to_keep": 1} if self.net.last_only else {}
            logits = self.model(**inputs, use_cache=False, **extra).logits[:, -1].float()
            answers = torch.stack([logits[:, self.yes_ids].logsumexp(-1), logits[:, self.no_ids].logsumexp(-1)], -1)
            out.append(answers.softmax(dim=-1)[:, 0].cpu())
        return torch.cat(out)

    def _official(self, inputs) -> torch.Tensor:
        """The runner's decision: greedy, one new token, decoded, stripped, upper-cased; A = yes."""
        generated = self.model.generate(**inputs, max_new_tokens=1, do_sample=False, temperature=None)
        answers = self.processor.batch_decode(generated[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return torch.tensor([1.0 if a.strip().upper()[:1] == "A" else 0.0 for a in answers])


def load_vqa_model(folder: Path, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None,
                   offload: torch.device | None = None) -> VqaModel:
    """A VqaModel from a local transformers model folder (config, weights, processor and tokenizer files), e.g.
    Qwen2.5-VL-3B-Instruct as published."""
    transformers = require("transformers", "transformers", "vqa")
    device = check_device(device)
    if dtype is None:  # float32 on the CPU (bf16 matmuls are slow there); the checkpoint's dtype elsewhere
        dtype = torch.float32 if device.type == "cpu" else "auto"
    elif isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    processor = transformers.AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    model = transformers.AutoModelForImageTextToText.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
    return VqaModel(model, processor, device, folder.name, offload)
