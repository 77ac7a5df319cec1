"""App responsiveness: cold start to first page, first prune and one generation on the demo model.

1. Cold start: ``python app.py`` in a fresh process on a free port; poll ``GET /`` until it
   answers 200 (includes interpreter start, imports and ``build_demo``).
2. Through ``gradio_client`` (the app's named endpoints ``/prune`` and ``/generate``, every other
   input at the app's default): the first prune (model load + calibration + dense perplexity +
   report + prune + perplexity), a second prune of the same setup (model cached), one generation.
3. If the client path fails (API changed, endpoint missing) the script falls back to the library
   calls the handlers make (``load_model`` -> ``get_calibration_ids`` -> ``prune_model`` ->
   ``perplexity`` -> ``generate_text``) in this process and says so in the result.
Results are marked pending when ``app.py`` or the demo model is missing.

    python benchmarks/bench_app.py --timeout 300
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

APP = common.REPO_ROOT / "app.py"
PROMPT = "The history of the city"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(port: int, env: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, str(APP)], cwd=str(common.REPO_ROOT), env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def wait_for_page(url: str, proc: subprocess.Popen, timeout: float) -> float:
    """Seconds until ``url`` answers HTTP 200; raises if the process dies or time runs out."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with code {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def _defaults(client, api_name: str) -> dict:
    """Every parameter of a named endpoint at its default value, None where there is none
    (e.g. an empty file upload), from gradio_client's API info."""
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"][api_name]
    return {p["parameter_name"]: p.get("parameter_default") if p.get("parameter_has_default")
            else None for p in info["parameters"]}


def bench_client(url: str, args) -> dict:
    from gradio_client import Client

    from wanda_viz import PruneConfig
    timings = {}
    start = time.perf_counter()
    client = Client(url, verbose=False)
    timings["client_connect_s"] = time.perf_counter() - start
    prune_inputs = _defaults(client, "/prune")
    prune_inputs.update({k: v for k, v in (("n_samples", args.n_samples),
                                           ("seq_len", args.seq_len),
                                           ("eval_windows", args.eval_windows)) if v is not None})
    for name in ("first_prune_s", "second_prune_s"):
        start = time.perf_counter()
        outputs = client.predict(api_name="/prune", **prune_inputs)
        timings[name] = time.perf_counter() - start
        timings["prune_summary"] = str(outputs[0])[:400]  # proof that the prune ran
        print(f"  {name}: {timings[name]:.2f}s", flush=True)
    run = PruneConfig(method=prune_inputs.get("method", "wanda"),
                      sparsity=float(prune_inputs.get("sparsity", 0.5)),
                      structure=prune_inputs.get("structure", "unstructured")).label()
    gen_inputs = {**_defaults(client, "/generate"), "prompt": PROMPT, "run": run,
                  "max_new_tokens": args.max_new_tokens}
    start = time.perf_counter()
    outputs = client.predict(api_name="/generate", **gen_inputs)
    timings["generate_s"] = time.perf_counter() - start
    timings["generate_summary"] = str(outputs[2])[:400]
    print(f"  generate_s: {timings['generate_s']:.2f}s", flush=True)
    return {"path": "gradio_client", "prune_inputs": prune_inputs, "generate_inputs": gen_inputs,
            **timings}


def bench_library(args, model_dir: Path) -> dict:
    """The library calls behind the handlers, timed in this process (fallback path).

    Unset sizes take the app's CPU defaults (32 windows x 256 tokens, 8 evaluation windows).
    """
    args.n_samples, args.seq_len = args.n_samples or 32, args.seq_len or 256
    args.eval_windows = args.eval_windows or 8
    from wanda_viz import (PruneConfig, WeightBackup, generate_text, get_calibration_ids,
                           get_eval_ids, load_model, perplexity, prune_model)
    timings = {}
    start = time.perf_counter()
    model, tokenizer = load_model(model_dir, device="cpu", dtype="float32")
    timings["load_s"] = time.perf_counter() - start
    start = time.perf_counter()
    ids, _ = get_calibration_ids(tokenizer, source=common.calibration_source(),
                                 n_samples=args.n_samples, seq_len=args.seq_len)
    eval_ids, _ = get_eval_ids(tokenizer, source="wikitext2")
    timings["data_s"] = time.perf_counter() - start
    backup = WeightBackup(model)
    start = time.perf_counter()
    timings["dense_ppl"] = perplexity(model, eval_ids, args.seq_len,
                                      max_windows=args.eval_windows, show_progress=False)
    timings["dense_eval_s"] = time.perf_counter() - start
    start = time.perf_counter()
    result = prune_model(model, ids, PruneConfig())
    timings["prune_s"] = time.perf_counter() - start
    timings["prune_timings"] = result.timings
    start = time.perf_counter()
    timings["pruned_ppl"] = perplexity(model, eval_ids, args.seq_len,
                                       max_windows=args.eval_windows, show_progress=False)
    timings["pruned_eval_s"] = time.perf_counter() - start
    gen = generate_text(model, tokenizer, PROMPT, max_new_tokens=args.max_new_tokens)
    timings["generate_s"], timings["generate_tokens_per_s"] = gen.seconds, gen.tokens_per_s
    backup.restore(model)
    timings["first_prune_equivalent_s"] = (timings["load_s"] + timings["data_s"]
                                           + timings["dense_eval_s"] + timings["prune_s"]
                                           + timings["pruned_eval_s"])
    return {"path": "library (handlers' calls, in-process)", **timings}


def _parse(argv: list[str] | None):
    parser = common.base_parser(__doc__.split("\n")[0], "bench_app")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per step")
    parser.add_argument("--n-samples", type=int, default=None,
                        help="calibration windows (default: the app's default)")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="tokens per window (default: the app's default)")
    parser.add_argument("--eval-windows", type=int, default=None,
                        help="perplexity windows (default: the app's default)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--model", type=Path, default=None,
                        help="model folder behind the app's 'embedded demo model' entry "
                             "(sets WANDA_VIZ_MODEL; default: assets/demo-model)")
    parser.add_argument("--cold-start-only", action="store_true",
                        help="measure only the start to first page (no model needed)")
    parser.add_argument("--fresh", action="store_true",
                        help="as on a fresh machine: no data folder (the app falls back to its "
                             "bundled slices) and an empty model cache (a GGUF default model is "
                             "dequantized on the first prune)")
    parser.set_defaults(repeats=1)
    return parser.parse_args(argv)


def _app_env(args, model_dir: Path, port: int, data: str | None, model_cache: str | None) -> dict:
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    env.pop("WANDA_VIZ_DATA", None)
    if data is not None:
        env["WANDA_VIZ_DATA"] = data
    if model_cache is not None:
        env["WANDA_VIZ_MODEL_CACHE"] = model_cache
    if args.model:
        env["WANDA_VIZ_MODEL"] = str(model_dir)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    return env


def _measure(proc, url: str, args, model_dir: Path, data: str, payload: dict) -> None:
    """Cold start, then the interactions (client, else library); results go into ``payload``."""
    payload["cold_start_s"] = wait_for_page(url, proc, args.timeout)
    print(f"cold start to first page: {payload['cold_start_s']:.2f}s", flush=True)
    if args.cold_start_only:
        payload["status"] = "measured (cold start only)"
    elif not (model_dir / "config.json").is_file():
        payload["status"] = f"partly pending: {model_dir} does not exist yet"
    else:
        try:
            payload["interactions"] = bench_client(url, args)
        except Exception as err:  # noqa: BLE001 - any client failure -> library fallback
            payload["client_error"] = f"{type(err).__name__}: {err}"
            print(f"gradio_client path failed ({payload['client_error']}); "
                  "timing the library calls instead", flush=True)
            os.environ["WANDA_VIZ_DATA"] = data
            payload["interactions"] = bench_library(args, model_dir)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    common.apply_common_args(args)
    machine = common.machine_info()
    protocol = {"n_samples": args.n_samples, "seq_len": args.seq_len,
                "eval_windows": args.eval_windows, "max_new_tokens": args.max_new_tokens,
                "prompt": PROMPT, "repeats": 1, "None": "the app's default"}
    if not APP.is_file():
        common.write_result(args.out, "bench_app", {"status": "pending: app.py does not exist",
                                                    "protocol": protocol}, machine)
        return 0
    from wanda_viz.loading import DEMO_MODEL_DIR
    model_dir = Path(args.model).resolve() if args.model else DEMO_MODEL_DIR
    protocol["model"] = (str(model_dir) if args.model else
                         "the app's default choice (interactions.prune_inputs.model_choice)")
    data = os.environ.get("WANDA_VIZ_DATA") or str(common.REPO_ROOT.parent / "shared" / "data")
    fresh_dir = tempfile.TemporaryDirectory(prefix="bench_app_models_") if args.fresh else None
    protocol["fresh_machine"] = bool(args.fresh)
    protocol["data_folder"] = None if args.fresh else data
    port = free_port()
    log_path = Path(args.out).with_suffix(".app.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"status": "measured", "protocol": protocol, "app_log": str(log_path)}
    env = _app_env(args, model_dir, port, None if args.fresh else data,
                   fresh_dir.name if fresh_dir else None)
    proc = start_app(port, env, log_path)
    try:
        _measure(proc, f"http://127.0.0.1:{port}/", args, model_dir, data, payload)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if fresh_dir is not None:
            fresh_dir.cleanup()
    common.write_result(args.out, "bench_app", payload, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
