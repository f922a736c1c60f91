"""Turn a failure from transformers / huggingface_hub into one sentence the user can act on."""

from __future__ import annotations

from clinical_rlhf.errors import ClinicalRLHFError, ConfigError, ModelNotFoundError
from clinical_rlhf.models.registry import ModelEntry


def _causes(exc: BaseException):
    """The exception and everything it was raised from, outermost first."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _kind(exc: BaseException) -> str:
    """Classify by exception type names, so no huggingface_hub version pin is needed."""
    names = {type(e).__name__ for e in _causes(exc)}
    text = " ".join(str(e) for e in _causes(exc)).lower()
    if "GatedRepoError" in names or "gated repo" in text:
        return "gated"
    if "RevisionNotFoundError" in names:
        return "revision"
    if "RepositoryNotFoundError" in names or "is not a valid model identifier" in text:
        return "missing_repo"
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} or "cached files" in text:
        return "not_cached"
    if "ConnectionError" in names or "connecterror" in text or "timeout" in text:
        return "no_network"
    if isinstance(exc, ImportError) or "ImportError" in names:
        return "missing_package"
    return "unreadable"


def _download_hint(entry: ModelEntry) -> str:
    hint = f"download it once with `hf download {entry.hub_id}` on a machine with internet access"
    if entry.gated:
        hint += " (after accepting its terms on huggingface.co and `hf auth login`)"
    return hint + ", or set model.path to a local directory holding the checkpoint"


def translate_load_error(exc: BaseException, *, source: str, entry: ModelEntry, is_local: bool,
                         offline: bool = False) -> ClinicalRLHFError:
    """The ClinicalRLHFError to raise instead of `exc` (callers use `raise ... from None`).

    `offline`: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE was set, so nothing was fetched on purpose.
    """
    if isinstance(exc, ClinicalRLHFError):
        return exc
    kind = _kind(exc)
    if kind == "missing_package":
        return ConfigError(f"loading {source} needs a package that is not installed ({exc}); install it "
                           f"with pip (BioGPT's tokenizer, for example, needs `sacremoses`)")
    if is_local:
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return ModelNotFoundError(f"model.path {source} could not be loaded as a transformers checkpoint "
                                  f"({first_line}); check that it holds config.json, the weights and the "
                                  f"tokenizer files written by save_pretrained")
    name = f"`{entry.id}` ({source})"
    if kind == "not_cached" and offline:
        return ModelNotFoundError(f"model {name} is not in the local Hugging Face cache and downloads are off "
                                  f"(HF_HUB_OFFLINE=1); {_download_hint(entry)}")
    if kind in ("not_cached", "no_network"):
        return ModelNotFoundError(f"model {name} is not cached and huggingface.co cannot be reached; "
                                  f"{_download_hint(entry)}")
    if kind == "gated":
        return ModelNotFoundError(f"model {name} is gated: accept its terms on https://huggingface.co/{source} "
                                  f"and log in with `hf auth login`, or set model.path to a local copy")
    if kind == "revision":
        return ModelNotFoundError(f"model {name} has no such revision; fix model.revision or set it to "
                                  f"null for the default branch")
    if kind == "missing_repo":
        return ModelNotFoundError(f"model {name} was not found on the Hub (renamed, private or mistyped); "
                                  f"set model.path to a local checkpoint instead")
    first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return ModelNotFoundError(f"model {name} could not be loaded ({first_line}); {_download_hint(entry)}")
