"""Tiny random models of real families, a random SD1.5-format checkpoint, and ComfyUI's own range graphs:
what the host tier, the benchmarks and the tools build their checks from (import under ComfyUI's Python)."""
