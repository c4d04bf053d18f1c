"""The process around a run: which device, how many threads, denormal flushing on the CPU,
optional dependencies, and where messages go.

Nothing here knows about models or data; every layer above may use it. torch is imported only
where a device or the denormal flag is asked of it, so a NumPy-only command (generate and score
on the CPU) never waits for it. Optional dependencies are
checked here without importing them (`plot`, `corpora` never wait for torch either).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    import torch

# environment variables read by the BLAS libraries behind NumPy when they load (OpenBLAS, MKL,
# BLIS, Apple Accelerate) and by OpenMP; after the library has loaded, only threadpoolctl can
# change its thread count
BLAS_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# the --threads default of every command; None leaves torch's own default (one thread per core)
DEFAULT_THREADS: int | None = None

# what a machine with a GPU driver has: NVIDIA's control device and driver file, AMD ROCm's
# kernel driver (torch.cuda on ROCm), WSL2's GPU bridge
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/kfd", "/dev/dxg")


def resolve_device(name: str) -> torch.device:
    """auto: a CUDA GPU, else an Apple GPU (MPS), else the CPU; a named device must exist.

    On MPS, operators PyTorch lacks there run on the CPU when PYTORCH_ENABLE_MPS_FALLBACK=1, which
    torch reads once at import: rnnkit's __init__ sets it on macOS (before torch is imported)."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu or auto")
    if name == "mps" and not mps_available():
        raise ConfigError(
            "--device mps was asked for, but PyTorch sees no Apple GPU (MPS needs Apple silicon, "
            "macOS 12.3 or later and a PyTorch built with MPS); use --device cpu or auto"
        )
    return torch.device(name)


def mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def has_module(module: str) -> bool:
    """Whether `module` can be imported, found without importing it (hmmlearn pulls in
    scikit-learn: seconds). A finder that refuses the name counts as missing."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, extra: str, what: str) -> None:
    """Raise MissingExtraError, naming the pip extra to install, when `module` is missing.

    Called at the start of whatever needs the module, before any work or file is written, so a
    plain `pip install rnnkit` gets one line saying what to install instead of a traceback late
    in a run (and no half-written output directory).
    """
    if not has_module(module):
        raise MissingExtraError(f"{what} needs {module}: pip install 'rnnkit[{extra}]'")


def skip_note(module: str, extra: str, what: str) -> bool:
    """For an optional output (a figure beside the numbers): True when `module` is there; else
    say on stderr what is skipped and how to get it, and return False."""
    if has_module(module):
        return True
    print(f"rnnkit: {module} is not installed (pip install 'rnnkit[{extra}]'); skipped {what}", file=sys.stderr)
    return False


def set_threads(threads: int | None, load_torch: bool = True) -> None:
    """Use `threads` CPU threads for the rest of the process (None: leave the libraries' defaults).

    torch gets torch.set_num_threads (intra-op) and, if nothing has run in parallel yet,
    set_num_interop_threads (which torch allows once per process). With `load_torch=False` a torch
    not imported yet is left unimported: it reads OMP_NUM_THREADS (intra-op) when it loads, and
    keeps its default inter-op threads (`rnnkit serve` on the NumPy engine never needs torch, and is
    spared its import: about a second and 200 MB). NumPy's BLAS reads its thread
    count when it loads: the environment variables cover a NumPy not imported yet, threadpoolctl
    (when installed) one that is. Why it matters: on a 2-core machine shared with another busy
    process, two torch threads wait on each other at every operation, and small models then
    train many times slower than with one thread (README, "Threads").
    """
    if threads is None:
        return
    if not 1 <= threads <= 1024:
        raise ConfigError(f"--threads must be between 1 and 1024, got {threads}")
    for name in BLAS_THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "numpy" in sys.modules and has_module("threadpoolctl"):
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    if not load_torch and not torch_loaded():
        return
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set, or parallel work already started: intra-op threads still apply
        pass


# glibc's malloc: allocations up to MMAP_THRESHOLD come from the heap, and the heap keeps up to
# TRIM_THRESHOLD of freed memory at its top instead of returning it to the system
MMAP_THRESHOLD = 32 << 20  # glibc's largest (a larger value is refused)
TRIM_THRESHOLD = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def tune_allocator() -> bool:
    """Keep the large temporary arrays of a forward or backward pass in the heap, reused from one
    window to the next, instead of mapped fresh from the system and unmapped again each time.

    With glibc's defaults an array above 32 MB is always mapped anew, and freeing one shrinks the
    heap, so every window of a NumPy forward pass page-faulted its temporaries in again: 450,000
    minor faults (1.8 GB touched) per evaluation of 1,000,000 characters by a 1x64 LSTM, 2.84 s;
    with both thresholds raised, 0 faults and 1.85 s, the same peak memory (283 MB). NumPy-engine
    training of a 1x128 LSTM: 58,250 -> 77,840 tokens/s; the default torch run: 17,000 -> 18,500
    (2-core CPU, one run each, 2026-12-01). The cost: up to TRIM_THRESHOLD of freed memory stays
    with the process. The CLI calls this at start; an API user may call it once. Only on glibc
    (Linux); elsewhere it does nothing and returns False.
    """
    import ctypes

    try:  # not platform.libc_ver(): it reads the Python executable (13 ms at every command's start)
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):  # Windows has no confstr; macOS and musl lack the name
        libc = ""
    if not sys.platform.startswith("linux") or not libc.startswith("glibc"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # both: a fixed mmap threshold also stops glibc from raising the trim threshold by itself
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def gpu_may_be_present() -> bool:
    """False when this process certainly has no GPU for torch, decided without importing torch:
    CUDA_VISIBLE_DEVICES hides every device ("" or "-1"), or no GPU driver's device file exists
    (GPU_DEVICE_FILES). True means "ask torch" (torch.cuda.is_available() then decides)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return any(os.path.exists(path) for path in GPU_DEVICE_FILES)


def torch_loaded() -> bool:
    """Whether this process has imported torch already (asking it anything is then free)."""
    return "torch" in sys.modules


def runs_on_cpu(name: str) -> bool:
    """Whether device `name` (auto, cpu or cuda) means the CPU, as resolve_device decides it, but
    without importing torch where that can be avoided: `auto` asks torch only when torch is
    already loaded or a GPU may be present (gpu_may_be_present). An Apple GPU is not looked for
    here (that needs torch): generate and score run on NumPy on a Mac unless --device mps is given."""
    if name == "auto" and (torch_loaded() or gpu_may_be_present()):
        return resolve_device("auto").type == "cpu"
    return name in ("auto", "cpu")


def _denormals_flushed() -> bool:
    import torch

    return (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0


@contextmanager
def flush_denormals():
    """Within the block, flush denormal floats to zero on the CPU (then restore the setting).

    As a model fits its text, softmax tails and saturated gates produce denormal numbers, and
    x86 arithmetic on them is ~100x slower: a toy LSTM's step went from 12 ms to 1.3 s. Flushing
    them changes results only below 1e-38 and keeps runs deterministic. The setting is global to
    the thread, so it is undone on the way out rather than left for the caller's other code.

    When torch has not been imported (a NumPy model on the CPU), this does nothing: the flag is
    torch's, NumPy has none, and importing torch for it would cost more than it saves in
    generation (NumPy sampled as fast with the flag as without it on two trained LSTMs:
    benchmarks/cold_start.py, figures in the README's Generation section).
    """
    if not torch_loaded():
        yield
        return
    import torch

    previous = _denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)


def stderr_logger(quiet: bool) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not quiet:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)

    return log
