"""Desktop side: int8 post-training quantization, the fidelity report, Edge TPU readiness."""
