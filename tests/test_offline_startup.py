"""Offline mode is applied when the CLI starts (and so for the engines it spawns)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_offline_env(monkeypatch):
    import huggingface_hub.constants as hub_constants

    from models.hub import config

    monkeypatch.setattr(config, "_ENV_BEFORE_ENFORCE", [])
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    return hub_constants


def test_cli_start_enforces_the_offline_setting(fresh_home, clean_offline_env, capsys):
    from app.cli import main

    assert main(["models", "list"]) == 0
    assert "HF_HUB_OFFLINE" not in os.environ  # off by default: nothing changed

    assert main(["offline", "on"]) == 0
    assert "offline mode is on" in capsys.readouterr().out
    assert "HF_HUB_OFFLINE" not in os.environ  # `fireside offline` only reports the setting

    assert main(["models", "list"]) == 0
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # any other command starts offline
    assert clean_offline_env.HF_HUB_OFFLINE is True


def test_relax_offline_restores_what_was_there(clean_offline_env, monkeypatch):
    from models.hub import enforce_offline, is_offline, relax_offline

    enforce_offline()
    enforce_offline()  # twice: the first value is what gets restored
    assert is_offline() and clean_offline_env.HF_HUB_OFFLINE is True
    relax_offline()
    assert "HF_HUB_OFFLINE" not in os.environ and clean_offline_env.HF_HUB_OFFLINE is False
    relax_offline()  # nothing to undo: no change
    assert "HF_HUB_OFFLINE" not in os.environ

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # set in the user's shell: it stays
    enforce_offline()
    relax_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and clean_offline_env.HF_HUB_OFFLINE is True
