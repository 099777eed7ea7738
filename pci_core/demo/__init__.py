"""The demo world and its model: a synthetic image world with an exact pixel judge (world), a tiny
text-conditioned diffusion model trained from scratch on it (demo_model, train; weights shipped in
weights/), how faithfully it renders prompts (fidelity), the model run standalone through the
engine (pipeline, sweep) and the sweep benchmark (bench)."""
