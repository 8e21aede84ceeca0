"""Child process: ``python -m quant._llama_quantize IN OUT FTYPE THREADS``.

Runs llama.cpp's quantizer on one file. Kept apart so the parent can cancel it (kill) and a
native crash on a bad file never takes the caller down.
"""

from __future__ import annotations

import ctypes
import sys


def main(argv: list[str]) -> int:
    src, dst, ftype, threads = argv[0], argv[1], int(argv[2]), int(argv[3])
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    return 0 if rc == 0 else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
