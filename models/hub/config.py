"""Where the Hub is, where its cache lives, and whether Fireside may use the network at all.

Everything is read at call time (not at import) so a setting changed while the app runs, or
an environment variable set by a test, takes effect on the next search or pull. The names and
defaults follow huggingface_hub's own conventions, so other tools' downloads are found.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..settings import Settings, read_settings

DEFAULT_ENDPOINT = "https://huggingface.co"
SETTING_OFFLINE = "offline"
_TRUE = {"1", "on", "yes", "true"}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def endpoint() -> str:
    """The Hub's address: ``$HF_ENDPOINT`` or https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hf_home() -> Path:
    base = os.environ.get("HF_HOME")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        base = os.path.join(xdg, "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(base)))


def cache_dir() -> Path:
    """The shared Hub cache: ``$HF_HUB_CACHE``, the legacy ``$HUGGINGFACE_HUB_CACHE``, or
    ``$HF_HOME/hub`` (default ``~/.cache/huggingface/hub``)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(os.path.expanduser(explicit)))
    return hf_home() / "hub"


def set_offline_setting(offline: bool) -> None:
    """Remember offline mode in ``settings.json`` (other keys are kept)."""
    Settings().set(SETTING_OFFLINE, bool(offline))


def is_offline(explicit: bool | None = None) -> bool:
    """True when any of these says offline: ``explicit`` (``--offline``), ``$HF_HUB_OFFLINE``
    (or ``$TRANSFORMERS_OFFLINE``), or the ``offline`` setting."""
    if explicit:
        return True
    if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE")):
        return True
    return bool(read_settings().get(SETTING_OFFLINE, False))


_ENV_BEFORE_ENFORCE: list[str | None] = []  # $HF_HUB_OFFLINE before enforce_offline()


def _set_hub_switch(value: bool) -> None:
    import sys

    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = value  # type: ignore[attr-defined]


def enforce_offline() -> None:
    """Make offline mode hold for every library in this process (transformers, mlx-lm...),
    not only for Fireside's own code: sets ``HF_HUB_OFFLINE=1`` and, if huggingface_hub is
    already imported, its module-level switch. Call it at start-up when offline mode is on."""
    if not _ENV_BEFORE_ENFORCE:
        _ENV_BEFORE_ENFORCE.append(os.environ.get("HF_HUB_OFFLINE"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    _set_hub_switch(True)


def relax_offline() -> None:
    """Undo :func:`enforce_offline` when offline mode is turned off while the app runs:
    ``$HF_HUB_OFFLINE`` goes back to what it was before (a value set in the shell stays)."""
    if not _ENV_BEFORE_ENFORCE:
        return
    before = _ENV_BEFORE_ENFORCE.pop()
    if before is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = before
    _set_hub_switch(_truthy(before) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE")))


def apply_offline_mode() -> bool:
    """When offline mode is on (the setting or $HF_HUB_OFFLINE), make it hold for every
    library in this process and the engines it starts. True when it is on."""
    if is_offline():
        enforce_offline()
        return True
    return False
