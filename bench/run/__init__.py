"""The run harness: specs, datasets, degradations, the runner and its run folder."""
