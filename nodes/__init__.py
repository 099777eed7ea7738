"""ComfyUI nodes of the PCI pack: thin skins over pci_core; host glue lives in host.py."""
from .judge import CISJudge, PCIJudgeLoader
from .loader import PCIDemoModelLoader
from .sampler import ConceptInsertionSampler

NODES = [PCIDemoModelLoader, ConceptInsertionSampler, PCIJudgeLoader, CISJudge]
