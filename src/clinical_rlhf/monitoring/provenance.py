"""Where a run came from, as MLflow tags: the code (git commit and whether the tree had
uncommitted changes), the base model (the fingerprint its adapters are tied to) and the data
(SHA-256 of every input file), so two runs in the MLflow UI can be told apart by more than
their names.

    tags = provenance_tags(base_fingerprint, {"prompts": path, ...})
    tracker.set_tags(tags)

MLflow's own `mlflow.source.git.commit` tag is used for the commit, so the UI shows it in its
usual place.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping
from pathlib import Path

GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_DIRTY_TAG = "clinical_rlhf.git_dirty"
BASE_FINGERPRINT_TAG = "clinical_rlhf.base_model_fingerprint"
DATA_TAG_PREFIX = "clinical_rlhf.data."
UNKNOWN = "unknown"
_CHUNK = 1 << 20


def git_state(directory: Path | None = None) -> tuple[str, str]:
    """(commit, dirty) of the git tree holding `directory` (default: this package's source), as
    strings; ("unknown", "unknown") outside a git tree or without git (an installed wheel)."""
    where = Path(directory or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN, UNKNOWN
    return commit, "true" if status.strip() else "false"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def provenance_tags(base_fingerprint: str | None, data: Mapping[str, Path | str | None]) -> dict[str, str]:
    """Tags for the run. `data` maps a name (`prompts`, `eval_prompts`, `dpo_train`, ...) to an
    input file, or to a digest already computed (a generated corpus has no file); None entries
    are left out. A file that cannot be read is tagged with why, not skipped silently."""
    commit, dirty = git_state()
    tags = {GIT_COMMIT_TAG: commit, GIT_DIRTY_TAG: dirty}
    if base_fingerprint:
        tags[BASE_FINGERPRINT_TAG] = base_fingerprint
    for name, source in data.items():
        if source is None:
            continue
        if isinstance(source, Path):
            try:
                tags[f"{DATA_TAG_PREFIX}{name}.sha256"] = file_sha256(source)
            except OSError as exc:
                tags[f"{DATA_TAG_PREFIX}{name}.sha256"] = f"unreadable: {exc.strerror}"
            tags[f"{DATA_TAG_PREFIX}{name}.path"] = str(source.resolve())
        else:
            tags[f"{DATA_TAG_PREFIX}{name}.sha256"] = str(source)
    return tags
