"""ComfyUI nodes of the PCI pack: thin skins over pci_core; host glue lives in host.py."""
from .judge import CISJudge, PCIJudgeLoader
from .loader import PCIDemoModelLoader
from .sampler import ConceptInsertionSampler
from .study import CISStudy, PCIConceptList
from .sweep import CISSweep
from .edit import BestTimestepEdit

NODES = [PCIDemoModelLoader, ConceptInsertionSampler, PCIJudgeLoader, CISJudge, PCIConceptList, CISStudy, CISSweep, BestTimestepEdit]
