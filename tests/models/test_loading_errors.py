"""Library failures become one actionable sentence (classified by exception type, then text)."""

from __future__ import annotations

import pytest

from clinical_rlhf.errors import ConfigError, ModelNotFoundError
from clinical_rlhf.models import get_model_entry
from clinical_rlhf.models.loading_errors import translate_load_error


class GatedRepoError(Exception):
    pass


class RepositoryNotFoundError(Exception):
    pass


class LocalEntryNotFoundError(Exception):
    pass


def _wrapped(inner: Exception) -> OSError:
    """transformers re-raises hub errors as OSError with the original as the cause."""
    try:
        try:
            raise inner
        except Exception as exc:
            raise OSError("loading failed") from exc
    except OSError as outer:
        return outer


MEDITRON = get_model_entry("meditron-7b")


@pytest.mark.parametrize("inner, offline, expected", [
    (GatedRepoError("403"), False, "is gated: accept its terms on https://huggingface.co/epfl-llm/meditron-7b"),
    (RepositoryNotFoundError("404"), False, "was not found on the Hub"),
    (LocalEntryNotFoundError("not in cache"), True, "downloads are off (HF_HUB_OFFLINE=1)"),
    (LocalEntryNotFoundError("not in cache"), False, "huggingface.co cannot be reached"),
])
def test_hub_failures_name_the_model_and_the_fix(inner, offline, expected) -> None:
    error = translate_load_error(_wrapped(inner), source=MEDITRON.hub_id, entry=MEDITRON, is_local=False,
                                 offline=offline)
    assert isinstance(error, ModelNotFoundError)
    assert "`meditron-7b` (epfl-llm/meditron-7b)" in str(error)
    assert expected in str(error)
    assert "\n" not in str(error)


def test_missing_package_is_a_config_error_naming_pip() -> None:
    error = translate_load_error(ImportError("sacremoses is required"), source="microsoft/biogpt",
                                 entry=get_model_entry("biogpt"), is_local=False)
    assert isinstance(error, ConfigError) and "sacremoses" in str(error) and "pip" in str(error)


def test_local_directory_failures_point_at_model_path(tmp_path) -> None:
    error = translate_load_error(ValueError("bad json\nline 2"), source=str(tmp_path),
                                 entry=MEDITRON, is_local=True)
    assert isinstance(error, ModelNotFoundError)
    assert str(error).startswith(f"model.path {tmp_path} could not be loaded") and "bad json" in str(error)
    assert "line 2" not in str(error)
