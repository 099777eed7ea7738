"""pci_core: the engine of PCI for ComfyUI (pure torch + numpy; never imports comfy).

Top level, the model-agnostic engine a user of any checkpoint runs through the nodes:
- schedule, samplers: sigma schedules, the noise axis tau, k-diffusion samplers for standalone runs
- insertion: the concept switch at step k and the branching denoiser for sweeps
- cis: CIS(k) and where it crosses a level (tau50)
judges/: does an image show a concept? one interface; rule, clip and vqa backends, one module each
demo/: the demo world (renderer + pixel judge), its tiny trained model, training, fidelity, the
       standalone pipeline and the benchmark; it exists because no real model can be downloaded here.
       Only the command line (cli) and benchmarks import it from the top level.
"""
__version__ = "0.1.0"
