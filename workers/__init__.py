"""The worker process: the one place that wires clients, converter, workflows and activities."""
