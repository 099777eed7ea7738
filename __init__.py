"""PCI for ComfyUI: Prompt-Conditioned Intervention nodes. ComfyUI calls comfy_entrypoint; the
nodes (and everything they import) load only then, so importing this package has no side effects;
loading the nodes copies the example workflows' input pictures into ComfyUI's input folder."""

# ComfyUI serves this folder at /extensions/<pack folder>/; its frontend reads node help pages from
# docs/<NodeId>.md there (nodes.py load_custom_node reads WEB_DIRECTORY for V3 packs too).
WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from comfy_api.latest import ComfyExtension

    from .nodes import NODES
    from .nodes.comfy_glue.examples import install_example_inputs

    class PCIExtension(ComfyExtension):
        async def get_node_list(self):
            install_example_inputs()  # the example workflows' input pictures (ComfyUI 0.3.64 calls no on_load)
            return list(NODES)

    return PCIExtension()
