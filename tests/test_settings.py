"""settings.json has one owner (models.settings): writes change only their own keys, under a
lock, and a damaged file is kept aside, never silently overwritten."""

from __future__ import annotations

import json
import subprocess
import sys

from models.settings import Settings, read_settings


def test_a_write_keeps_keys_another_process_set_meanwhile(fresh_home):
    window = Settings()  # read at start-up, as the window does
    code = "from models.hub import set_offline_setting; set_offline_setting(True)"
    subprocess.run([sys.executable, "-c", code], check=True)  # `fireside offline on` meanwhile
    window.update({"window_size": [800, 600], "model_id": "m"})
    data = read_settings()
    assert data["offline"] is True and data["window_size"] == [800, 600]
    assert window.get("offline") is True  # the in-memory view caught up too


def test_a_damaged_file_is_kept_aside_and_reported(fresh_home):
    path = Settings().path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"offline": true, "geometry": ', encoding="utf-8")  # cut off mid-write
    settings = Settings()
    assert settings.get("offline") is None
    assert settings.problem and "damaged" in settings.problem and "Error" not in settings.problem
    settings.set("model_id", "x")
    aside = path.with_name("settings.json.unreadable")
    assert aside.read_text(encoding="utf-8") == '{"offline": true, "geometry": '
    assert json.loads(path.read_text(encoding="utf-8")) == {"model_id": "x"}


def test_parallel_writers_lose_nothing(fresh_home):
    code = (
        "import sys; from models.settings import Settings\n"
        "s = Settings()\n"
        "for i in range(40): s.set(f'{sys.argv[1]}{i}', i)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, name]) for name in ("a", "b")]
    assert [p.wait(60) for p in procs] == [0, 0]
    data = read_settings()
    assert all(data[f"{n}{i}"] == i for n in ("a", "b") for i in range(40))
