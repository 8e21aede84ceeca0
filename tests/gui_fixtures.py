"""Fixtures shared by the window's test modules: a FIRESIDE_HOME per module (the history
and the library persist across its windows) and one model host per module, so the model is
loaded once per module, not once per window. Taken with ``pytest_plugins = ("gui_fixtures",)``.
"""

from __future__ import annotations

import os

import pytest

from runtime import BackendOptions, ModelHost

# One thread: on a busy shared 2-core machine, llama.cpp's two spinning threads run ~10x slower.
OPTIONS = BackendOptions(n_threads=1)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("gui-home")
    old = os.environ.get("FIRESIDE_HOME")
    os.environ["FIRESIDE_HOME"] = str(path)
    yield path
    if old is not None:
        os.environ["FIRESIDE_HOME"] = old


@pytest.fixture(scope="module")
def host(home):
    with ModelHost(idle_unload_s=None, options=OPTIONS) as shared:
        yield shared
