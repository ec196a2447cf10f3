"""The device commands (argparse, no desktop packages): edge-classify, edge-bench, edge-report, and what they share."""
