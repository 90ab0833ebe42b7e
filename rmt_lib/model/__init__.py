"""The Recurrent Memory Transformer: config, memory cell, recurrent wrapper, capture, save/load."""
from rmt_lib.model.config import RMTConfig
from rmt_lib.model.io import from_pretrained, save_pretrained, verify_checksums
from rmt_lib.model.memory_cell import CellOutput, MemoryCell
from rmt_lib.model.recurrent import RecurrentMemoryTransformer, RMTOutput

load_model = from_pretrained

__all__ = ["RMTConfig", "RecurrentMemoryTransformer", "RMTOutput", "MemoryCell", "CellOutput",
           "save_pretrained", "from_pretrained", "load_model", "verify_checksums"]
