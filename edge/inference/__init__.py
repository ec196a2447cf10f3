"""The model on the device: its manifest, the TFLite runtime and board settings, the classifier, its heads and reading stage, the benchmark."""
