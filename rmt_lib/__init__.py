"""rmt_lib: an executable companion to Appendix H of the BABILong paper (Recurrent Memory Transformer analysis).

One sample travels one way, and each package owns one step of its trip:

    rmt_lib.data      prose + bAbI facts -> samples -> token ids in segments -> batches
    rmt_lib.model     the RMT: memory cell, recurrent wrapper, capture (run_with_cache), the model folder
    rmt_lib.train     curriculum training (config, one shared step, the loop, run logs)
    rmt_lib.evaluate  accuracy by length, and the committed results read back
    rmt_lib.probes    memory distances and drift, attention shares, Figure 8's inputs, the book's claims
    rmt_lib.plots     figures (draw, never run a model)
    rmt_lib.display   tables, HTML views, segment scrubbers
    rmt_lib.cost      FLOPs, isolated measurements, the cost benchmark

beside `paths`, `runtime` (seeds, threads, devices), `jsonio`, `stats`, `budgets`, `paper` (the paper's
published numbers, quoted as inputs) and `reproduction` (the committed results again, timed step by step).
"""
from rmt_lib.runtime import resolve_device, seed_everything

__all__ = ["seed_everything", "resolve_device"]
__version__ = "0.1.0"
