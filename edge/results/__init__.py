"""What a run answers and keeps: women's exams, the batch, the results log, the heat-map overlays."""
