"""The pack's glue between pci_core and ComfyUI, one module per concern; node files call these.

- sampling:  Sampling (what a run needs: model, negative, steps, cfg, sampler, scheduler, max_batch),
             KSampler's sigmas, input checks, the device policy for rows per model call
- insertion: the concept-insertion guider over ComfyUI's sampling_function (ConceptInsertionSampler)
- sweep:     every (seed, k) branch in one sampler run, decode and judge (CISSweep, CIS Study)
- editing:   seed edits, input-image inversion, edit probes (BestTimestepEdit)
- runs:      run labels and settings, run folders under output/pci, input warnings
- demo:      the demo model as MODEL / CLIP / VAE and the rule judge (the one module importing pci_core.demo)
"""
