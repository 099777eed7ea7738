"""PCI Demo Model: the shipped demo model as native MODEL, CLIP and VAE."""
from comfy_api.latest import io

from .comfy_glue import demo_adapter, internals, workflow_paths


class PCIDemoModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PCIDemoModelLoader",
            display_name="PCI Demo Model",
            category="PCI",
            description="The tiny text-to-image model of the PCI demo world (shapes, colours, sizes, "
                        "positions, backgrounds), as MODEL / CLIP / VAE for the core nodes.",
            inputs=[io.Combo.Input("weights", options=demo_adapter.demo_weights_choices(),
                                   tooltip="Shipped weights, or a file in models/pci_demo")],
            outputs=[io.Model.Output(tooltip="The demo denoiser, for KSampler and the PCI samplers"),
                     io.Clip.Output(tooltip="The demo text encoder (demo words only), for CLIP Text Encode"),
                     io.Vae.Output(tooltip="The demo autoencoder: 64x64 RGB <-> 4x8x8 latents")],
        )

    @classmethod
    def execute(cls, weights) -> io.NodeOutput:
        internals.require("PCIDemoModelLoader")
        weights = workflow_paths.listed(weights, demo_adapter.demo_weights_choices(), "weights")
        return io.NodeOutput(*demo_adapter.load_demo(weights))
