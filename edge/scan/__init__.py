"""A scan before the model: checking the file, decoding it (DICOM too), the plausibility gate, the inputs of a run, the camera."""
