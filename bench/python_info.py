"""What the Python side of a benchmark really runs: one line each for PyTorch
and numpy (if importable), with the version, where it came from, its BLAS or
GEMM library and the kernel or ISA that library picked, and its threads.

Usage: python bench/python_info.py THREADS
"""
import sys


def torch_line(threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    config = torch.__config__.show()
    blas = next((l.split("=", 1)[1].strip(" ,") for l in config.replace(",", "\n").splitlines()
                 if "BLAS_INFO=" in l), "unknown")
    onednn = next((l.strip().lstrip("- ").split(" (Git")[0] for l in config.splitlines()
                   if "MKL-DNN" in l or "oneDNN" in l), "no oneDNN")
    capability = torch.backends.cpu.get_cpu_capability()
    return (f"PyTorch {torch.__version__}: BLAS {blas}, "
            f"{onednn}, CPU capability {capability}, {torch.get_num_threads()} threads")


def numpy_line():
    try:
        import numpy
    except ImportError:
        return None
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"numpy {numpy.__version__}: BLAS unknown (threadpoolctl missing)"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    described = "; ".join(f"{i.get('internal_api')} {i.get('version')}, "
                          f"{i.get('architecture', '?')} kernel, {i.get('num_threads')} threads"
                          for i in blas) or "no BLAS loaded"
    return f"numpy {numpy.__version__}: {described}"


def main():
    threads = int(sys.argv[1])
    for line in (torch_line(threads), numpy_line()):
        if line:
            print(line)


if __name__ == "__main__":
    main()
