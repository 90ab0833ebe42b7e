"""The Recurrent Memory Transformer: config, memory cell (+ its fast Bloom path), recurrent wrapper, capture,
and the model folder (save, load with its tokenizer)."""
from rmt_lib.model.checkpoint import from_pretrained, load_model_folder, save_pretrained, verify_checksums
from rmt_lib.model.config import RMTConfig
from rmt_lib.model.memory_cell import CellOutput, MemoryCell
from rmt_lib.model.recurrent import RecurrentMemoryTransformer, RMTOutput

__all__ = ["RMTConfig", "RecurrentMemoryTransformer", "RMTOutput", "MemoryCell", "CellOutput",
           "save_pretrained", "from_pretrained", "load_model_folder", "verify_checksums"]
