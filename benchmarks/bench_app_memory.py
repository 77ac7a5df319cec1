"""Resident memory of the served app: N sessions x M SparseGPT runs through the named API, and
after the sessions end (issue 21; ``bench_session_memory.py`` measures the run records alone).

Each configuration runs in a fresh process (``--worker``) that serves the dashboard in-process as
``app.py`` does (``serve``; on an older checkout ``queue(max_size=32)`` + ``launch``) on
``--model-choice`` (default: the real SmolLM2-135M) with the dashboard's defaults (16 x 128
calibration windows, 8 perplexity windows). Session 1 prunes alone (``--runs`` SparseGPT runs at
0.3, 0.5, 0.7 ...), then the other sessions prune concurrently (each ``gradio_client.Client`` is
one session); then every client is closed (Gradio's ``unload``: the session ended). Readings: RSS
(/proc), peak RSS, glibc's free-but-held bytes (``mallinfo2``), the shared store's size, the
run records' packed masks, Gradio's per-session records.

``--config`` picks what the fixes do, so each one is measured: ``after`` (this checkout, all on),
``no-arena-cap`` (``WANDA_VIZ_MALLOC_ARENAS=0``), ``no-trim`` (``WANDA_VIZ_MALLOC_TRIM=0``),
``none`` (both off); ``--code DIR`` runs the worker on another checkout (``before``: main).

    python benchmarks/bench_app_memory.py --threads 1 --configs after none \\
        --out benchmarks/results/bench_app_memory.json
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

if os.environ.get("WANDA_VIZ_BENCH_CODE"):  # --code: that checkout's wanda_viz, not this one's
    sys.path.insert(0, os.environ["WANDA_VIZ_BENCH_CODE"])

CONFIGS = {"after": {}, "no-arena-cap": {"WANDA_VIZ_MALLOC_ARENAS": "0"},
           "no-trim": {"WANDA_VIZ_MALLOC_TRIM": "0"},
           "none": {"WANDA_VIZ_MALLOC_ARENAS": "0", "WANDA_VIZ_MALLOC_TRIM": "0"}}
SPARSITIES = (0.3, 0.5, 0.7, 0.6, 0.4, 0.2)


def _serve():
    from wanda_viz import ui
    demo = ui.build_demo()
    port = common_free_port()
    options = dict(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port,
                   quiet=True)
    if hasattr(ui, "serve"):
        ui.serve(demo, **options)
    else:  # an older checkout: app.py's queue
        demo.queue(max_size=32, default_concurrency_limit=1).launch(**options)
    return demo, f"http://127.0.0.1:{port}/"


def common_free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prune(client, args, sparsity: float) -> None:
    if args.calib_source is None or args.eval_source is None:
        from wanda_viz.ui import inputs
        args.calib_source = args.calib_source or inputs.default_calibration()
        args.eval_source = args.eval_source or inputs.default_eval()
    setup = dict(model_choice=args.model_choice, device="cpu", dtype="float32",
                 calib_source=args.calib_source, calib_text="", calib_file=None,
                 n_samples=args.n_samples, seq_len=args.seq_len, seed=0,
                 eval_source=args.eval_source, eval_windows=args.eval_windows)
    client.predict(**setup, method="sparsegpt", sparsity=sparsity, structure="unstructured",
                   group="default", api_name="/prune")


def _session(client, args) -> None:
    for sparsity in SPARSITIES[:args.runs]:
        _prune(client, args, sparsity)


def _accounting(demo) -> dict:
    """MB the store, the run records and Gradio's per-session records hold; allocator stats."""
    from wanda_viz.service import Session
    from wanda_viz.service.weights_store import UPDATED_WEIGHTS
    holder = getattr(demo, "state_holder", None)
    sessions = list(holder.session_data.values()) if holder is not None else []
    masks = sum(run.nbytes for state in sessions for value in state.state_data.values()
                if isinstance(value, Session) for run in value.runs.values())
    return {"rss_mb": common.current_rss_mb(), "peak_rss_mb": common.peak_rss_mb(),
            "store_mb": UPDATED_WEIGHTS.nbytes / 2**20, "store_entries": len(UPDATED_WEIGHTS),
            "packed_masks_mb": masks / 2**20, "gradio_sessions": len(sessions),
            "allocator_mb": _allocator_stats()}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]


def _allocator_stats() -> dict | None:
    """MB glibc holds (all arenas): ``heap`` (arenas' size), ``mmapped`` (large blocks),
    ``in_use`` and ``free`` (held but unused: what fragmentation keeps); None without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    info, mb = libc.mallinfo2(), 2.0 ** 20
    return {"heap": info.arena / mb, "mmapped": info.hblkhd / mb,
            "in_use": (info.uordblks + info.hblkhd) / mb, "free": info.fordblks / mb}


def _end(clients, args) -> None:
    """Close every client; wait until the app has ended their sessions (or ``--end-wait``)."""
    try:
        from wanda_viz.ui.app import wait_for_session_end
    except ImportError:
        wait_for_session_end = None
    for client in clients:
        client.close()
    if wait_for_session_end is None:  # an older checkout has no session end: give it time
        time.sleep(args.end_wait)
        return
    for client in clients:
        if not wait_for_session_end(client.session_hash, timeout=120):
            print(f"session {client.session_hash} did not end within 120 s", file=sys.stderr)


def worker(args) -> dict:
    import torch
    from gradio_client import Client

    import wanda_viz
    torch.set_num_threads(args.threads or 1)
    demo, url = _serve()
    readings = {"code": str(Path(wanda_viz.__file__).parent.parent),
                "served": _accounting(demo)}
    try:
        clients = [Client(url, verbose=False, download_files=False)
                   for _ in range(args.sessions)]
        _prune(clients[0], args, SPARSITIES[0])
        readings["first_prune"] = _accounting(demo)
        for sparsity in SPARSITIES[1:args.runs]:
            _prune(clients[0], args, sparsity)
        readings["one_session"] = _accounting(demo)
        threads = [threading.Thread(target=_session, args=(c, args)) for c in clients[1:]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        readings["all_sessions"] = _accounting(demo)
        _end(clients, args)
        readings["ended"] = _accounting(demo)
    finally:
        demo.close()
    return readings


def _run_worker(args, config: str) -> dict:
    env = {**os.environ, **CONFIGS[config], "TQDM_DISABLE": "1",
           "WANDA_VIZ_BENCH_CODE": str(args.code or common.REPO_ROOT),
           "GRADIO_HEARTBEAT_INTERVAL": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", *args.passthrough]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(args.code or
                          common.REPO_ROOT), timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{config} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def _commit(folder) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=str(folder)).stdout.strip()


def _parser() -> argparse.ArgumentParser:
    parser = common.base_parser(__doc__.splitlines()[0], "bench_app_memory")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3, help="SparseGPT runs per session")
    parser.add_argument("--model-choice", default="smollm2-135m")
    parser.add_argument("--calib-source", default=None, help="default: the dashboard's")
    parser.add_argument("--eval-source", default=None, help="default: the dashboard's")
    parser.add_argument("--n-samples", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--eval-windows", type=int, default=8)
    parser.add_argument("--configs", nargs="+", default=["after", "none"], choices=list(CONFIGS))
    parser.add_argument("--code", type=Path, default=None,
                        help="run the worker on this checkout (e.g. main: 'before')")
    parser.add_argument("--code-commit", default=None,
                        help="the commit of --code when it is not a git checkout")
    parser.add_argument("--label", default=None, help="name of the measurement (with --code)")
    parser.add_argument("--end-wait", type=float, default=30.0,
                        help="seconds to wait after closing the clients (older checkouts)")
    parser.add_argument("--timeout", type=float, default=7200.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.worker:
        common.apply_common_args(args)
        print(json.dumps(worker(args)))
        return
    common.apply_common_args(args)
    args.passthrough = [a for a in argv if a not in ("--worker",)]
    machine = common.machine_info()
    commit = args.code_commit or _commit(args.code or common.REPO_ROOT)  # the code measured
    results = {}
    for config in args.configs:
        name = args.label or config
        results[name] = _run_worker(args, config)
        row = results[name]
        print(f"{name}: RSS first prune {row['first_prune']['rss_mb']:.0f} MB, one session "
              f"{row['one_session']['rss_mb']:.0f} MB, {args.sessions} sessions "
              f"{row['all_sessions']['rss_mb']:.0f} MB "
              f"(peak {row['all_sessions']['peak_rss_mb']:.0f}),"
              f" ended {row['ended']['rss_mb']:.0f} MB")
    payload = {"commit": commit, "model": args.model_choice,
               "settings": {k: getattr(args, k) for k in ("sessions", "runs", "n_samples",
                                                          "seq_len", "eval_windows",
                                                          "calib_source", "eval_source")},
               "configs": {c: CONFIGS[c] for c in args.configs}, "results": results}
    common.write_result(args.out, "bench_app_memory", payload, machine)


if __name__ == "__main__":
    main()
