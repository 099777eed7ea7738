"""Where judge weights come from: local files only, never a download, never unpickled code."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a torch checkpoint, never unpickling code (weights_only=True)."""
    if path.suffix.lower() in (".safetensors", ".sft"):
        from safetensors.torch import load_file
        state = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # pickled code, TorchScript archives, ...
            raise ValueError(f"weights {str(path)!r}: not a plain tensor checkpoint loadable with "
                             f"weights_only=True ({type(e).__name__}: {e}); convert it to .safetensors") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"weights {str(path)!r}: expected a state dict of tensors, got {type(state).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def _state_dict_mismatch(expected: dict, found: dict) -> str:
    """'' when the keys and shapes agree, else a short account (counts and a few examples)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [f"{k} {tuple(found[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
                if k in found and found[k].shape != expected[k].shape]
    parts = [f"{len(keys)} {what} (e.g. {', '.join(keys[:3])})"
             for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                ("tensors of another shape, file vs model", reshaped)) if keys]
    return "; ".join(parts)


def resolve_weights(backend: str, weights: Any, search_dirs: Sequence[str | Path] = ()) -> Path:
    """The weights file or open_clip folder (clip) or model folder (vqa) a name refers to: an absolute path,
    or a path relative to one of search_dirs (else to the working directory). FileNotFoundError names the
    file and folder."""
    what = "weights file" if backend == "clip" else "model folder"
    if not isinstance(weights, (str, Path)) or not str(weights).strip():
        raise ValueError(f"{backend} judge: give weights, the {what} (a path, or a name in the judges' models "
                         f"folder); got {weights!r}")
    name = Path(str(weights).strip()).expanduser()
    folders = [name.parent] if name.is_absolute() else [Path(d) for d in search_dirs] or [Path.cwd()]
    for folder in folders:
        path = folder / name
        if backend == "clip" and path.is_file():
            return path
        if backend == "clip" and path.is_dir():
            if (path / "open_clip_config.json").is_file():
                return path  # a repository as open_clip publishes it: its config names the architecture
            raise FileNotFoundError(f"clip judge: '{name}' in folder '{folder}' is a folder without "
                                    f"open_clip_config.json; the clip judge needs a weights file (.safetensors, or a "
                                    f"torch state-dict checkpoint) or a folder as open_clip publishes it")
        if backend == "vqa" and (path.is_dir() or path.is_file()):
            model_folder = path if path.is_dir() else path.parent  # a file picked inside a model folder
            if not (model_folder / "config.json").is_file():
                raise FileNotFoundError(f"vqa judge: file 'config.json' not found in folder '{model_folder}'; "
                                        f"a vqa judge needs a transformers model folder (config.json, weights, "
                                        f"processor and tokenizer files, as save_pretrained writes them)")
            return model_folder
    shown = name.name if name.is_absolute() else str(name)
    where = ", ".join(f"'{f}'" + ("" if f.is_dir() else " (which does not exist)") for f in folders)
    raise FileNotFoundError(f"{backend} judge: {what} '{shown}' not found in folder{'s' if len(folders) > 1 else ''} "
                            f"{where}; place it there or give its full path (judge weights are never downloaded)")


def _mtime(path: Path | None) -> float | None:
    """Last change of a weights file, or of the newest file directly in a model folder."""
    if path is None:
        return None
    if path.is_dir():
        return max([p.stat().st_mtime for p in path.iterdir() if p.is_file()] + [path.stat().st_mtime])
    return path.stat().st_mtime
