"""ComfyUI outside its server: a headless ComfyUI in one process (headless), and PCI studies fanned out
over Ray actors that each hold one (the study-ray command). Nothing here is imported by the nodes or by
the engine's modules; ComfyUI itself is imported only inside a Headless (COMFYUI_PATH)."""
