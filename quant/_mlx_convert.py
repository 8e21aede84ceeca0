"""Child process: ``python -m quant._mlx_convert SOURCE OUT DTYPE BITS GROUP``.

Runs ``mlx_lm.convert`` on a staged source folder. Kept apart so the parent can cancel it
(kill) and a native crash never takes the caller down. mlx-lm's own "[INFO] ..." lines go to
stdout as they come (the parent turns them into progress); a failure ends with one line
``FIRESIDE-ERROR Kind: message`` and exit status 2.
"""

from __future__ import annotations

import sys

from quant.child import report_failure


def main(argv: list[str]) -> int:
    source, out, dtype, bits, group = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4])
    try:
        from mlx_lm.convert import convert

        print("[INFO] Starting", flush=True)
        convert(
            source,
            out,
            quantize=bits > 0,
            q_bits=bits if bits > 0 else None,
            q_group_size=group if bits > 0 else None,
            dtype=dtype or None,
            trust_remote_code=False,
        )
    except Exception as exc:
        return report_failure(exc)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
