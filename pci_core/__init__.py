"""pci_core: the engine of PCI for ComfyUI (pure torch + numpy; never imports comfy).

Top level, the model-agnostic engine a user of any checkpoint runs through the nodes:
- schedule, samplers: sigma schedules, the noise axis tau, k-diffusion samplers for standalone runs
- insertion: the concept switch at step k and the branching denoiser for sweeps
- cis: CIS(k) and where it crosses a level (tau50); results: run folders; runner: the one run loop
  (resume by seed block, the adaptive search's rounds); adaptive: the adaptive lock-in search
- sweep_plan: seeds and insertion steps from text, seed blocks, the sweep's value checks
- study: concept lists, taxonomies, study folders
- edit_rules, edit_metrics: choosing the edit step, and SSIM / PSNR / CLIP metrics; images: IMAGE checks
- official: the official PCI runner's results files, read and written; plots
- cli: the command line (the top floor), arg_checks: its argument checks
judges/: does an image show a concept? one interface, shared networks; clip and vqa backends
demo/: the demo world (renderer, its pixel judge "rule"), its tiny trained model, training, fidelity,
       the standalone pipeline and its commands; it exists because no real model can be downloaded
       here. Only the command line (cli) imports it from the top level.
"""
__version__ = "0.1.0"
