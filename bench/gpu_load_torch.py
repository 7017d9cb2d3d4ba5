#!/usr/bin/env python3
"""gpu_load_torch.py: the baseline of swarm-gpu-bench's load row (docs/gpu-check.md).

    python3 bench/gpu_load_torch.py FILE.safetensors [LOADS]

Loads FILE with safetensors.torch.load_file(FILE, device="cuda") LOADS times (default 3) on
this machine's own PyTorch, each timed from the call to torch.cuda.synchronize() after it, the
CUDA context made first so that its start is not counted, and prints one line a load:
"torch_load seconds=S bytes=B". Prints "skipped: WHY" and exits 0 where torch, safetensors or
a GPU is missing. It never changes a GPU setting.
"""
import sys
import time


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    path = sys.argv[1]
    loads = int(sys.argv[2]) if len(sys.argv) == 3 else 3
    try:
        import torch
        from safetensors.torch import load_file
    except Exception as e:  # ImportError, or a broken install
        print(f"skipped: import torch, safetensors failed: {type(e).__name__}: {e}")
        return 0
    if not torch.cuda.is_available():
        print(f"skipped: torch {torch.__version__} sees no CUDA GPU")
        return 0
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.cuda.get_device_name(0)}", flush=True)
    for _ in range(loads):
        t0 = time.perf_counter()
        tensors = load_file(path, device="cuda")
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
        print(f"torch_load seconds={seconds:.6f} bytes={nbytes}", flush=True)
        del tensors
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
