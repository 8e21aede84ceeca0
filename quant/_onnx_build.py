"""Child process: ``python -m quant._onnx_build SOURCE OUT PRECISION CACHE``.

Runs onnxruntime-genai's model builder (CPU, ``int8`` or ``int4``) on a Hugging Face folder.
Kept apart so the parent can cancel it (kill) and a native crash never takes the caller
down. The builder's own output goes to stdout as it comes (the parent turns it into
progress); a failure ends with one line ``FIRESIDE-ERROR Kind: message`` and exit status 2.
"""

from __future__ import annotations

import sys

from quant.child import STAGE_PREFIX, report_failure


def main(argv: list[str]) -> int:
    source, out, precision, cache = argv[0], argv[1], argv[2], argv[3]
    try:
        print(f"{STAGE_PREFIX}loading", flush=True)
        from onnxruntime_genai.models import builder

        options = builder.parse_extra_options(None, source, out, precision, "cpu", cache, None)
        print(f"{STAGE_PREFIX}building", flush=True)
        builder.create_model(None, source, out, precision, "cpu", cache, **options)
    except Exception as exc:
        return report_failure(exc)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
