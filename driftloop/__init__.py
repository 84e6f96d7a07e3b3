"""driftloop: from production LLM traffic to drift incidents, targeted synthetic data and fine-tuning requests."""

__version__ = "0.1.0"
