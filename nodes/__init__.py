"""ComfyUI nodes of the PCI pack, one file per node (or pair): thin skins over pci_core; the ComfyUI glue lives
in comfy_glue/."""
from .judge_nodes import CISJudge, PCIJudgeLoader
from .demo_loader import PCIDemoModelLoader
from .concept_insertion_sampler import ConceptInsertionSampler
from .cis_study import CISStudy, PCIConceptList
from .cis_sweep import CISSweep
from .best_timestep_edit import BestTimestepEdit
from .concept_encode import PCIConceptEncode
from .comfy_glue import internals

internals.check()  # one log line per ComfyUI internal the pack calls that is missing or changed here

NODES = [PCIDemoModelLoader, ConceptInsertionSampler, PCIConceptEncode, PCIJudgeLoader, CISJudge, PCIConceptList, CISStudy,
         CISSweep, BestTimestepEdit]
