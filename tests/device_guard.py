"""A CPU-only guard against tensors made on the wrong device inside a model call.

Every test runs on the CPU, where a tensor made without `device=` lands on the right device by
accident; on CUDA or MPS it lands on the CPU and the next op mixing it with the data fails. Running
with torch.set_default_device("meta") does not show it (the default device follows along), and
fake tensors stop at torch.unique. What does: a TorchFunctionMode that sees every tensor factory
call and fails when the call comes from our own code (pci_core/, nodes/) without an explicit
device=. `*_like` factories and Tensor.new_* follow their tensor and are fine; factories called
by torch or ComfyUI themselves are not ours to judge.

    with device_guard():            # raises FactoryWithoutDevice on exit, naming file:line
        denoise(x, sigma)
    guarded(fn)                     # fn with every call under its own guard
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

REPO = Path(__file__).resolve().parents[1]
OUR_CODE = (REPO / "pci_core", REPO / "nodes")

FACTORIES = {
    getattr(torch, name) for name in (
        "tensor", "as_tensor", "asarray", "scalar_tensor", "full", "zeros", "ones", "empty", "empty_strided",
        "arange", "range", "linspace", "logspace", "eye", "rand", "randn", "randint", "randperm",
        "tril_indices", "triu_indices", "from_numpy", "frombuffer")
    if hasattr(torch, name)}
# from_numpy/frombuffer take no device: a tensor from host memory must then move with .to(device).
NO_DEVICE_ARGUMENT = {f for f in FACTORIES if getattr(f, "__name__", "") in ("from_numpy", "frombuffer")}

# Frames of the function-mode machinery between the factory call and __torch_function__.
_MACHINERY = (os.path.realpath(__file__), os.path.realpath(torch.overrides.__file__),
              os.path.realpath(os.path.join(os.path.dirname(torch.__file__), "utils", "_device.py")))


class FactoryWithoutDevice(AssertionError):
    """Our code made a tensor without saying on which device."""


class _FactoryGuard(TorchFunctionMode):
    def __init__(self, roots):
        super().__init__()
        self.roots = tuple(os.path.realpath(r) for r in roots)  # folders or single files
        self.violations: dict[str, str] = {}  # "file:line" -> description, first seen order
        self._ours: dict[str, str | None] = {}

    def _our_path(self, filename: str) -> str | None:
        if filename not in self._ours:
            real = os.path.realpath(filename)  # the pack is loaded through a custom_nodes symlink
            ours = any(real == root or real.startswith(root + os.sep) for root in self.roots)
            self._ours[filename] = real if ours else None
        return self._ours[filename]

    def _caller(self):
        frame = sys._getframe(1)
        while frame is not None and os.path.realpath(frame.f_code.co_filename) in _MACHINERY:
            frame = frame.f_back
        return frame

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and (func in NO_DEVICE_ARGUMENT or kwargs.get("device") is None):
            frame = self._caller()
            path = frame and self._our_path(frame.f_code.co_filename)
            if path:
                where = f"{os.path.relpath(path, REPO)}:{frame.f_lineno}"
                self.violations.setdefault(where, f"torch.{func.__name__} without device= in {frame.f_code.co_name}")
        return func(*args, **kwargs)


@contextlib.contextmanager
def device_guard(roots=OUR_CODE):
    """Fail (on exit, listing every offending line) if code under `roots` made a tensor with a
    factory and no explicit device= while the block ran. The block itself runs unchanged."""
    guard = _FactoryGuard(roots)
    with guard:
        yield guard
    if guard.violations:
        lines = "\n".join(f"  {where}: {what}" for where, what in guard.violations.items())
        raise FactoryWithoutDevice("tensor factories without device= (they land on the CPU on a GPU run):\n" + lines)


def guarded(fn, roots=OUR_CODE):
    """fn with every call inside its own device_guard (wrap a model call: a denoiser, predict_noise)."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        with device_guard(roots):
            return fn(*args, **kwargs)
    return call
