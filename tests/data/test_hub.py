"""The hub-offline switch is read as huggingface_hub reads it, when asked rather than at import."""

from __future__ import annotations

import pytest

from t5lab.data.hub import is_offline


@pytest.fixture(autouse=True)
def _no_offline_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("value", [None, "0", "false", ""])
def test_online_unless_the_variable_is_true(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is not None:
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert not is_offline()


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on"])
def test_offline_when_the_variable_is_true(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert is_offline()


def test_datasets_variable_counts_only_for_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert not is_offline() and is_offline(for_datasets=True)
