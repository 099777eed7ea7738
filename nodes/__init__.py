"""ComfyUI nodes of the PCI pack: thin skins over pci_core; the ComfyUI glue lives in host/."""
from .judge import CISJudge, PCIJudgeLoader
from .loader import PCIDemoModelLoader
from .sampler import ConceptInsertionSampler
from .study import CISStudy, PCIConceptList
from .sweep import CISSweep
from .edit import BestTimestepEdit
from .encode import PCIConceptEncode

NODES = [PCIDemoModelLoader, ConceptInsertionSampler, PCIConceptEncode, PCIJudgeLoader, CISJudge, PCIConceptList, CISStudy,
         CISSweep, BestTimestepEdit]
