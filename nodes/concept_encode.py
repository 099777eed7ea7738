"""PCI Concept Encode: the concept prompt encoded like its base, so that the two differ in their text only."""
from comfy_api.latest import io

from .comfy_glue import conditioning


class PCIConceptEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PCIConceptEncode",
            display_name="PCI Concept Encode",
            category="PCI",
            description="Encodes the concept text as CLIP Text Encode does and copies every extra of the base "
                        "conditioning (FluxGuidance's guidance, SDXL's sizes, area, mask, strength, timestep range, "
                        "ControlNet): PCI switches the text only, and a freshly encoded concept would otherwise run "
                        "with the model's defaults (FLUX: guidance 3.5).",
            inputs=[
                io.Clip.Input("clip", tooltip="The text encoder that made the base conditioning"),
                io.Conditioning.Input("base", tooltip="The base conditioning, with whatever nodes added to it "
                                      "(e.g. after FluxGuidance)"),
                io.String.Input("text", multiline=True, dynamic_prompts=True,
                                tooltip="The concept prompt, e.g. 'a photo of an old person'"),
            ],
            outputs=[io.Conditioning.Output(display_name="concept", tooltip="The concept text's conditioning with "
                                            "the base's extras: connect it as the concept of the PCI samplers")],
        )

    @classmethod
    def execute(cls, clip, base, text) -> io.NodeOutput:
        if not base:
            raise ValueError("base conditioning is empty: connect the base prompt's conditioning")
        return io.NodeOutput(conditioning.encode_like(clip, text, base))


NODES = [PCIConceptEncode]
