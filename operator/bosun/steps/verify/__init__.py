"""Verification: did the executed calls achieve what was asked? ``run`` checks every executed call
objectively (``probes``), then asks the model for a short judgement."""
