"""rmt_lib: an executable companion to Appendix H of the BABILong paper (Recurrent Memory Transformer analysis)."""
from rmt_lib.utils import resolve_device, seed_everything

__all__ = ["seed_everything", "resolve_device"]
__version__ = "0.1.0"
