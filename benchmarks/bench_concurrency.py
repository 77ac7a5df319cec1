"""A short generation's latency while another user's sweep runs, through the app's named API.

The dashboard is served in this process (``build_demo()``, ``serve`` as in ``app.py``) on the
embedded demo model (or ``--model``) with a fresh sweep cache. Two ``gradio_client`` users:
1. both prune once (Wanda 50%), so each session has windows and a run;
2. the user generates ``--new-tokens`` tokens ``--repeats`` times on the idle app (baseline);
3. the other user submits a sweep (``--methods`` x ``--sparsities``, unstructured); as soon as
   the sweep is processing, the user generates again and again until the sweep is done, timing
   each request from submit to result (queue wait included).
Reported: idle and under-sweep latencies (median, max, count) and the sweep's wall time. The same
script measures any version of the app (run it from another checkout for "before").

    python benchmarks/bench_concurrency.py --threads 1 --label after
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

PROMPT = "The history of the city"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(args, cache_dir: str) -> tuple[object, str]:
    os.environ.update({"WANDA_VIZ_SWEEP_CACHE": cache_dir, "HF_HUB_OFFLINE": "1",
                       "GRADIO_ANALYTICS_ENABLED": "False"})
    if args.model:
        os.environ["WANDA_VIZ_MODEL"] = args.model
    from wanda_viz import ui
    demo = ui.build_demo()
    port = _free_port()
    options = dict(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port,
                   quiet=True)
    if hasattr(ui, "serve"):
        ui.serve(demo, **options)  # as app.py does
    else:  # an older checkout (the "before" measurement)
        demo.queue(max_size=32, default_concurrency_limit=1).launch(**options)
    return demo, f"http://127.0.0.1:{port}/"


def _prune(client, args) -> None:
    setup = dict(model_choice="embedded demo model", device="cpu", dtype="float32",
                 calib_source=args.calib_source, calib_text="", calib_file=None,
                 n_samples=args.n_samples, seq_len=args.seq_len, seed=0,
                 eval_source="wikitext2", eval_windows=args.eval_windows)
    client.predict(**setup, method="wanda", sparsity=0.5, structure="unstructured",
                   group="default", api_name="/prune")


def _generate(client, args) -> float:
    start = time.perf_counter()
    client.predict(prompt=PROMPT, run="wanda 50%", max_new_tokens=args.new_tokens,
                   do_sample=False, temperature=1.0, top_p=1.0, seed=0, api_name="/generate")
    return time.perf_counter() - start


def _under_sweep(sweeper, user, args) -> tuple[list[float], float]:
    """(generation latencies while the sweep ran, sweep wall time from submit to result)."""
    from gradio_client.utils import Status
    start = time.perf_counter()
    job = sweeper.submit(methods=args.methods, sparsities=args.sparsities,
                         structures=["unstructured"], api_name="/sweep")
    while job.status().code != Status.PROCESSING and not job.done():
        time.sleep(0.02)  # polling the job's state, not a measurement
    latencies = []
    while not job.done():
        latencies.append(_generate(user, args))
    job.result()
    return latencies, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = common.base_parser(__doc__.splitlines()[0], "bench_concurrency")
    parser.add_argument("--label", default="after", help="name of this measurement")
    parser.add_argument("--model", default=None, help="WANDA_VIZ_MODEL (default: demo model)")
    parser.add_argument("--calib-source", default="wikitext2-valid")
    parser.add_argument("--n-samples", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--eval-windows", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=["magnitude", "wanda", "sparsegpt"])
    parser.add_argument("--sparsities", nargs="+", type=float, default=[0.3, 0.5, 0.6, 0.7])
    args = parser.parse_args(argv)
    common.apply_common_args(args)
    machine = common.machine_info()
    from gradio_client import Client
    with tempfile.TemporaryDirectory() as cache_dir:
        demo, url = _serve(args, cache_dir)
        try:
            sweeper, user = Client(url, verbose=False), Client(url, verbose=False)
            _prune(sweeper, args)
            _prune(user, args)
            idle = [_generate(user, args) for _ in range(args.repeats)]
            busy, sweep_s = _under_sweep(sweeper, user, args)
        finally:
            demo.close()
    payload = {"label": args.label, "new_tokens": args.new_tokens,
               "sweep": {"methods": args.methods, "sparsities": args.sparsities,
                         "points": 1 + len(args.methods) * len(args.sparsities),
                         "wall_s": sweep_s},
               "setup": {"n_samples": args.n_samples, "seq_len": args.seq_len,
                         "eval_windows": args.eval_windows, "model": args.model or "demo"},
               "generation_idle_s": common.summarize(idle),
               "generation_during_sweep_s": {**common.summarize(busy), "count": len(busy),
                                             "all": busy}}
    print(f"{args.label}: idle generation median {payload['generation_idle_s']['median']:.3f} s;"
          f" during the {sweep_s:.1f} s sweep: {len(busy)} generation(s), median "
          f"{payload['generation_during_sweep_s']['median']:.3f} s, max {max(busy):.3f} s")
    common.write_result(args.out, "bench_concurrency", payload, machine)


if __name__ == "__main__":
    main()
