"""ComfyUI nodes of the PCI pack: thin skins over pci_core; the ComfyUI glue lives in host/."""
from .judge_nodes import CISJudge, PCIJudgeLoader
from .demo_loader import PCIDemoModelLoader
from .concept_insertion_sampler import ConceptInsertionSampler
from .cis_study import CISStudy, PCIConceptList
from .cis_sweep import CISSweep
from .best_timestep_edit import BestTimestepEdit
from .concept_encode import PCIConceptEncode

NODES = [PCIDemoModelLoader, ConceptInsertionSampler, PCIConceptEncode, PCIJudgeLoader, CISJudge, PCIConceptList, CISStudy,
         CISSweep, BestTimestepEdit]
