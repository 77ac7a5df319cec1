"""Shared helpers for the benchmark scripts: machine info, median timing, peak RSS, JSON results.

Every result file carries the machine (CPU model, cores, RAM, load average before and after),
the torch thread count and library versions, so that a number is never read without its context.
Timings are medians of several repeats; on a shared machine they are still noisy
(see BENCHMARKS.md).
Peak memory is the process high-water mark ``VmHWM`` from ``/proc/self/status`` (Linux), with
``resource.getrusage`` as the fallback; run each configuration in a fresh process (``run_isolated``)
when the peak must belong to that configuration alone.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Before torch (which imports tqdm): progress bars would clutter the output and skew timings.
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

__all__ = [
    "RESULTS_DIR", "REPO_ROOT", "LLAMA_SIZES", "machine_info", "load_average", "median_time",
    "summarize", "peak_rss_mb", "current_rss_mb", "write_result", "make_llama", "llama_config",
    "random_ids", "calibration_source", "base_parser", "apply_common_args", "run_isolated",
    "model_bytes",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
if str(REPO_ROOT) not in sys.path:  # scripts run as ``python benchmarks/x.py`` from the repo root
    sys.path.insert(0, str(REPO_ROOT))

# Random LLaMA shapes (intermediate ~ 2.6875 x hidden as in LLaMA-7B 4096 -> 11008; every
# in_features divides by 4 so 2:4 applies everywhere). "smoke" is for the smoke test only.
LLAMA_SIZES = {
    "smoke": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, vocab_size=99, max_position_embeddings=128),
    "tiny": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                 num_attention_heads=4, vocab_size=32000, max_position_embeddings=2048),
    "medium": dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
                   num_attention_heads=8, vocab_size=32000, max_position_embeddings=2048),
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
               num_attention_heads=32, vocab_size=32000, max_position_embeddings=2048),
}


# ----------------------------------------------------------------------------- machine

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (how busy the machine was)."""
    return [round(x, 2) for x in os.getloadavg()]


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:  # noqa: BLE001 - any failure just means "unknown"
        return None


def machine_info() -> dict:
    """CPU, cores, RAM, load, threads, GPU and versions: stored with every result."""
    info = {
        "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "load_average": load_average(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": {m: _version(m) for m in ("torch", "transformers", "gradio")},
        "cuda": None,
    }
    from wanda_viz import __version__
    from wanda_viz.provenance import source_commit
    info["versions"]["wanda_viz"] = __version__
    info["source"] = source_commit()  # git commit of the code measured (dirty: uncommitted edits)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["cuda"] = {"device": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                        "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda}
    return info


# ----------------------------------------------------------------------------- timing, memory

def summarize(values: list[float]) -> dict:
    """Median, min, max and the raw values (seconds or any unit)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": [round(v, 6) for v in values]}


def median_time(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1,
                setup: Callable[[], object] | None = None, sync: bool = False) -> dict:
    """Run ``fn`` ``warmup + repeats`` times; summary of the timed repeats (seconds).

    ``setup`` runs untimed before every call (e.g. restoring dense weights).
    """
    times = []
    for i in range(warmup + repeats):
        if setup is not None:
            setup()
        if sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return summarize(times)


def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Process high-water mark of resident memory (VmHWM), in MiB; getrusage as fallback."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024


def current_rss_mb() -> float:
    kib = _status_kib("VmRSS")
    return (kib or 0) / 1024


def model_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


# ----------------------------------------------------------------------------- models, data

def _llama_fields(size: str, overrides: dict) -> dict:
    if size not in LLAMA_SIZES:
        raise ValueError(f"size must be one of {', '.join(LLAMA_SIZES)}, got {size!r}")
    fields = {**LLAMA_SIZES[size], **overrides, "use_cache": False}
    fields.setdefault("num_key_value_heads", fields["num_attention_heads"])  # MHA, as LLaMA-7B
    return fields


def llama_config(size: str = "tiny", **overrides):
    from wanda_viz.testing import tiny_config
    return tiny_config("llama", **_llama_fields(size, overrides))


def make_llama(size: str = "tiny", *, seed: int = 0, dtype: torch.dtype = torch.float32,
               **overrides) -> torch.nn.Module:
    """A random LlamaForCausalLM of a named size (plus overrides), in eval mode."""
    from wanda_viz.testing import make_tiny_model
    model = make_tiny_model("llama", seed, dtype=dtype, **_llama_fields(size, overrides))
    model.config.use_cache = False
    return model


def calibration_source() -> str:
    """WikiText-2 train (the reference) when the data folder has it, else its validation split.

    Same rule as the app's default calibration (wanda_viz/ui/inputs.py).
    """
    root = Path(os.environ.get("WANDA_VIZ_DATA") or REPO_ROOT.parent / "shared" / "data")
    return ("wikitext2" if (root / "wikitext-2-raw" / "wiki.train.raw").is_file()
            else "wikitext2-valid")


def random_ids(n: int, seq_len: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """Random token ids (n, seq_len): calibration/eval windows for random models."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n, seq_len), generator=generator)


# ----------------------------------------------------------------------------- CLI, output

def base_parser(description: str, name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's choice). On a busy machine "
                             "use 1: with more threads than free cores every op waits for a "
                             "descheduled OpenMP worker (small matmuls go from us to ms)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / f"{name}.json",
                        help="JSON result file")
    return parser


def apply_common_args(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging
    logging.getLogger("transformers").setLevel(logging.ERROR)


def write_result(path: str | os.PathLike, name: str, payload: dict, machine: dict) -> Path:
    """Write ``payload`` with the machine info (taken at start) and the load at the end."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "machine": machine, "load_average_end": load_average(),
              "command": " ".join([Path(sys.executable).name] + sys.argv), **payload}
    path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path


def run_isolated(argv: list[str], timeout: float | None = None) -> dict:
    """Run ``python argv...`` in a fresh process that prints one JSON line last; parse it.

    Used where the peak RSS must belong to one configuration (VmHWM never goes down).
    """
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(REPO_ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(last)
