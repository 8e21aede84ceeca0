"""``fireside doctor``: what this machine has, which engines work, and what runs each model."""

from __future__ import annotations

import argparse
import json
import platform
from typing import Any

from models.sizes import size_cell

HELP = "Show this machine's hardware, the engines that work here, and what each model runs on."


def register(sub: Any) -> None:
    p = sub.add_parser("doctor", help=HELP, description=HELP)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run)


def memory_info() -> dict[str, Any]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return {"total_bytes": vm.total, "available_bytes": vm.available}
    except ImportError:
        return {"total_bytes": None, "available_bytes": None}


def accelerators() -> dict[str, Any]:
    """CUDA and MPS as PyTorch sees them; Metal as MLX sees it (or the platform says)."""
    import importlib.util

    from runtime.dispatch import apple_silicon

    found: dict[str, Any] = {"cuda": None, "mps": None, "metal": None}
    if importlib.util.find_spec("torch") is not None:
        try:
            import torch

            if torch.cuda.is_available():
                found["cuda"] = [
                    {
                        "name": torch.cuda.get_device_name(i),
                        "memory_bytes": torch.cuda.get_device_properties(i).total_memory,
                    }
                    for i in range(torch.cuda.device_count())
                ]
            else:
                found["cuda"] = []
            mps = getattr(torch.backends, "mps", None)
            found["mps"] = bool(mps is not None and mps.is_available())
        except Exception as exc:  # a broken torch: say so rather than fail
            from models.errors import describe

            found["cuda"] = f"unknown (torch failed to start: {describe(exc)})"
    if importlib.util.find_spec("mlx") is not None:
        try:
            import mlx.core as mx

            found["metal"] = bool(mx.metal.is_available())
        except Exception:
            found["metal"] = apple_silicon()
    else:
        found["metal"] = apple_silicon() or False
    return found


def backend_report() -> list[dict[str, Any]]:
    from runtime.dispatch import BACKENDS, on_request_only, probe

    rows = []
    for name, spec in BACKENDS.items():
        usable, detail, devices = probe(name)
        rows.append(
            {
                "backend": name,
                "runs": spec.formats,
                "usable": usable,
                "detail": detail,
                "devices": list(devices),
                "on_request_only": on_request_only(name) if usable else None,
            }
        )
    return rows


def model_report() -> list[dict[str, Any]]:
    from models import Catalog
    from models.records import FORMAT_ENGINES
    from runtime.dispatch import on_request_only, plan

    rows = []
    for record in Catalog().list():
        choice = plan(record)
        row = {"id": record.id, "name": record.name, "format": record.format}
        if choice.backend is None:
            asked = next(
                (b for b in FORMAT_ENGINES.get(record.format, ()) if on_request_only(b)), None
            )
            if asked:
                forced = plan(record, asked)
                if forced.device:
                    row.update(
                        backend=forced.backend,
                        device=forced.device,
                        note=f"only with --backend {asked}: {on_request_only(asked)}",
                    )
                    rows.append(row)
                    continue
        row.update(
            backend=choice.backend, device=choice.device, note=choice.note, why=choice.reason
        )
        rows.append(row)
    return rows


def gather() -> dict[str, Any]:
    from app import __version__, build_type
    from models.bundled import MISSING, bundled_model_path
    from runtime.machine import cpu_info

    return {
        "fireside": __version__,
        "build": build_type(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu_info(),
        "memory": memory_info(),
        "accelerators": accelerators(),
        "backends": backend_report(),
        "models": model_report(),
        "bundled_model": None if bundled_model_path() is None else str(bundled_model_path()),
        "bundled_model_note": MISSING if bundled_model_path() is None else None,
    }


def _accel_lines(acc: dict[str, Any]) -> list[str]:
    cuda = acc["cuda"]
    if cuda is None:
        cuda_text = "unknown (PyTorch is not installed)"
    elif isinstance(cuda, str):
        cuda_text = cuda
    elif cuda:
        cuda_text = ", ".join(f"{d['name']} ({size_cell(d['memory_bytes'])})" for d in cuda)
    else:
        cuda_text = "none"
    mps = acc["mps"]
    mps_text = "unknown (PyTorch is not installed)" if mps is None else ("yes" if mps else "no")
    return [
        f"  CUDA:   {cuda_text}",
        f"  MPS:    {mps_text}",
        f"  Metal:  {'yes' if acc['metal'] else 'no'}",
    ]


def render(report: dict[str, Any]) -> str:
    cpu, mem = report["cpu"], report["memory"]
    cores = f"{cpu.get('physical_cores') or '?'} cores / {cpu.get('logical_cores') or '?'} threads"
    lines = [
        f"Fireside {report['fireside']} ({report['build']}) on {report['os']}, Python {report['python']}",
        "",
        "Machine",
        f"  CPU:    {cpu.get('model') or cpu['machine']} ({cores})",
        f"          features: {', '.join(cpu['features']) or 'none detected'}",
        f"  Memory: {size_cell(mem['total_bytes'])} total, {size_cell(mem['available_bytes'])} available",
        *_accel_lines(report["accelerators"]),
        "",
        "Engines",
    ]
    for b in report["backends"]:
        if b["usable"]:
            where = ", ".join(b["devices"]) or "cpu"
            text = f"ready on {where} ({b['detail']})"
            if b["on_request_only"]:
                text += f"; used only with --backend {b['backend']}: {b['on_request_only']}"
        else:
            text = b["detail"]
        lines.append(f"  {b['backend']:<10} {b['runs']:<26} {text}")
    lines += ["", "Models"]
    if report.get("bundled_model_note"):
        lines.append(f"  {report['bundled_model_note']}")
    if not report["models"]:
        lines.append("  the library is empty")
    for m in report["models"]:
        if m["device"]:
            text = f"{m['backend']} on {m['device']}"
            if m.get("note"):
                text += f" ({m['note']})"
            if m.get("why"):
                text += f": {m['why']}"
        else:
            text = f"cannot run here: {m['note']}"
        lines.append(f"  {m['id']:<32} {m['format']:<15} {text}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = gather()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0
