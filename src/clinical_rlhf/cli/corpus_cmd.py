"""`clinical-rlhf corpus export`: the command lives with the corpus package."""

from clinical_rlhf.corpus.cli import register

__all__ = ["register"]
