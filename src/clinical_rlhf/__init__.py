"""Clinical RLHF: safety-constrained RLHF for medical language models."""

__version__ = "0.1.0"
