"""Paths a workflow gives: a workflow may come from a stranger, so a path in it stays inside ComfyUI's own
folders (the input folder, the user folder, the pack's model folder, the pack itself), symbolic links and
'..' resolved first; a name picked from a list must be one of the list's."""
from __future__ import annotations

from pathlib import Path

import folder_paths

PACK_FOLDER = Path(__file__).resolve().parents[2]


def inside(text: str, name: str, roots: dict[str, str | Path]) -> Path:
    """The file a workflow names, resolved (relative to the first root); ValueError naming the input and the
    folders allowed when it lies outside all of them."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name}: empty; give a file name in {next(iter(roots))}")
    given = Path(text.strip()).expanduser()
    first = Path(next(iter(roots.values())))
    real = (given if given.is_absolute() else first / given).resolve()
    if any(real.is_relative_to(Path(root).resolve()) for root in roots.values()):
        return real
    raise ValueError(f"{name} {text.strip()!r}: outside the folders a workflow may read ({', '.join(roots)}); put the "
                     f"file in {first} and give its name")


def taxonomy_file(text: str, name: str = "taxonomy_file") -> Path:
    return inside(text, name, {"ComfyUI's input folder": folder_paths.get_input_directory(),
                               "ComfyUI's user folder": folder_paths.get_user_directory(),
                               "the PCI pack's folder": PACK_FOLDER})


def model_file(text: str, folder: str, name: str) -> Path:
    """A path inside one of ComfyUI's folders for `folder` (e.g. models/pci_judges)."""
    return inside(text, name, {f"models/{folder} ({path})": path for path in folder_paths.get_folder_paths(folder)})


def listed(value: str, choices: list[str], name: str) -> str:
    """A combo's value as one of its choices (ComfyUI 0.3.64 does not check V3 combos)."""
    if value not in choices:
        raise ValueError(f"{name} {value!r}: not one of the {len(choices)} choices this ComfyUI offers "
                         f"(e.g. {choices[0]!r}); pick one from the list")
    return value
