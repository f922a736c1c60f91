"""`python -m clinical_rlhf.cli ...`: the same command as `clinical-rlhf` (what `accelerate launch -m` needs)."""

from clinical_rlhf.cli import main

main()
