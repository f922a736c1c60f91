"""`python main.py ...` is the same command as `clinical-rlhf ...`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from clinical_rlhf.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
