"""pci_core: the engine of PCI for ComfyUI (pure torch + numpy; never imports comfy).

- world: the demo world and its exact pixel judge
- demo_model, train: the tiny text-to-image model trained on it
- schedule, samplers: sigma schedules and k-diffusion samplers for standalone runs
- insertion: the concept switch at step k and the branching denoiser for sweeps
- pipeline: the demo model run standalone
"""
__version__ = "0.1.0"
