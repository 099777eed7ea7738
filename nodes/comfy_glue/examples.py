"""The pictures the shipped example workflows load (workflows/*_input.png), copied into ComfyUI's input
folder when the pack loads: a workflow with a LoadImage node then runs when queued on a ComfyUI that has
never seen the pack. A file of the same name already there is left alone (it may be the user's)."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import folder_paths

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def install_example_inputs() -> list[str]:
    """The example pictures copied now (names); a failure to copy is logged, never raised: the nodes load."""
    copied = []
    for picture in sorted(WORKFLOWS.glob("*_input.png")):
        target = Path(folder_paths.get_input_directory()) / picture.name
        try:
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(picture, target)
                copied.append(picture.name)
        except OSError as e:
            logging.warning(f"PCI: could not copy the example picture {picture.name} into {target.parent} ({e}); "
                            f"copy it there by hand to run the example workflows that load it")
    return copied
