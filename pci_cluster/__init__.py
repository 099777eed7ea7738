"""ComfyUI outside its server: a headless ComfyUI in one process (headless), PCI studies fanned out over
workers that each run one (study_driver, worker, workflow: the study-ray command), and the test bed the
host tier, benchmarks and tools build their checks from (testbed). The nodes and the engine's modules
never import it; only the command line (pci_core.cli, the top floor) dispatches study-ray to it. ComfyUI
itself is imported only inside a Headless (COMFYUI_PATH) or a testbed builder."""
