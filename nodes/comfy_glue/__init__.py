"""The pack's glue between pci_core and ComfyUI, one module per concern; node files call these.

- sampling:       Sampling (what a run needs: model, negative, steps, cfg, sampler, scheduler, max_batch),
                  KSampler's sigmas, conditioning checks, the device policy for rows per model call
- sampler_inputs: the sampler inputs every sampling node declares (steps, cfg, sampler, scheduler, seeds,
                  max_batch, threshold), once
- guider:         the concept-insertion guider over ComfyUI's sampling_function (ConceptInsertionSampler)
- branching:      every (seed, k) branch in one sampler run, decode and judge (CISSweep, CIS Study)
- edit_sampling:  seed edits, input-image inversion, edit probes (BestTimestepEdit)
- edit_plan:      what BestTimestepEdit measures for a rule, and its explanation
- conditioning:   what base and concept may differ in; a concept encoded like its base
- managed_judges: judges' networks under ComfyUI's model management
- runs:           run labels and settings, run folders under output/pci
- progress:       one ComfyUI progress bar over a sweep's sampling and judging
- examples:       the example workflows' input pictures, copied to ComfyUI's input folder
- demo_adapter:   the demo model as MODEL / CLIP / VAE and the rule judge (the one module importing
                  pci_core.demo)
"""
