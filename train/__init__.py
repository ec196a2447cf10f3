"""Desktop side: MIAS data, the Keras model, patient-grouped evaluation, reports, the final model."""
