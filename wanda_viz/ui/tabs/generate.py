"""Tab 6, generate: dense and pruned continuations side by side with the same decoding settings.

Instruct models get their chat template (a toggle, switched on after a prune of a model whose
tokenizer has one), so a question is answered rather than continued; the example prompts suit
both kinds. Named API endpoint: /generate (outputs: takeaway, dense tokens, pruned tokens, summary
table, probabilities, protocol).
"""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...analysis import generation_takeaway
from ...service import Session, get_limits, jobs
from .. import fields, texts, views
from ...service.limits import check_text_size
from ..inputs import check_range
from ...errors import FieldError
from ..wiring import GPU, QUIET, Context, listen, pick, readable

__all__ = ["TITLE", "ID", "build", "wire", "refresh", "check_generate", "on_generate", "on_render",
           "on_runs"]

TITLE, ID = "6. Generate", "generate"
REFRESH_ON = ("session",)
OUTPUTS = ("takeaway", "dense", "pruned", "table", "probs", "protocol")
DECODING = ("prompt", "run", "chat", "max_new_tokens", "do_sample", "temperature", "top_p",
            "seed")
# (prompt, chat template): questions for instruct models, openings for base and demo models
EXAMPLES = [["What is the capital of France?", True],
            ["Give me three tips for staying healthy.", True],
            ["Explain in one sentence why the sky is blue.", True],
            ["Once upon a time, there was a little girl named Lily.", False],
            ["The history of the city", False]]
DIFF_COLORS = {"differs": "#EE6677", "after divergence": "#F4C2C8"}


def build(limits) -> dict:
    gr.Markdown(texts.GENERATE_TAB)
    c = {}
    with gr.Row():
        c["prompt"] = gr.Textbox(EXAMPLES[0][0], label="Prompt", scale=3)
        c["run"] = fields.Dropdown([], label="Pruned run", scale=2, allow_custom_value=True)
        c["chat"] = fields.Checkbox(False, label="chat template (instruct models)", scale=1,
                                    info="on by default after pruning an instruct model")
    gr.Examples(EXAMPLES, [c["prompt"], c["chat"]], label="Example prompts")
    with gr.Row():
        c["max_new_tokens"] = fields.IntSlider(1, limits.max_new_tokens, step=1,
                                               value=min(40, limits.max_new_tokens),
                                               label="max new tokens")
        c["do_sample"] = fields.Checkbox(False, label="sample (else greedy)")
        c["temperature"] = fields.Slider(0.1, 2.0, value=1.0, step=0.1, label="temperature")
        c["top_p"] = fields.Slider(0.1, 1.0, value=1.0, step=0.05, label="top-p")
        c["seed"] = fields.IntNumber(0, precision=0, minimum=0, label="seed")
    c["generate"] = gr.Button("Generate", variant="primary")
    c["takeaway"] = gr.Markdown()
    with gr.Row():
        c["dense"] = gr.HighlightedText(label="Dense", color_map=DIFF_COLORS)
        c["pruned"] = gr.HighlightedText(label="Pruned", color_map=DIFF_COLORS, show_legend=True)
    c["table"] = gr.Dataframe(label="Same decoding settings: tokens/s (noise: same dense "
                              "kernels), first differing token", interactive=False, wrap=True)
    c["probs"] = gr.Plot(label="Probability of each generated token", show_label=False)
    with gr.Accordion("Decoding protocol", open=False):
        c["protocol"] = gr.Markdown()
    return c


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    listen(c["generate"].click, on_generate, [ctx.session],
           {"session": ctx.session, **pick(c, *OUTPUTS)}, api_name="generate", **GPU,
           inputs_kwargs=pick(c, *DECODING), check=check_generate)


def refresh(ctx: Context, trigger):
    """After a prune: offer the session's runs (Wanda's picked when there is one), and the chat
    template switched on for an instruct model."""
    return listen(trigger, on_runs, [ctx.session], pick(ctx.tabs[ID], "run", "chat"), **QUIET)


def on_runs(session: Session) -> dict:
    runs = views.run_choices(session)
    wanda = [r for r in runs if r.startswith("wanda")]
    picked = (wanda or runs)[-1] if runs else None
    return {"run": gr.Dropdown(choices=runs, value=picked), "chat": session.chat_model}


def check_generate(session: Session, *, prompt: str, run: str, max_new_tokens: int,
                   **decoding) -> None:
    """Refuse a /generate request before the queue: no run, an unknown run, an empty or too long
    prompt (``WANDA_VIZ_MAX_PROMPT_CHARS``, checked before anything tokenizes it)."""
    if not session.runs:
        raise gr.Error("Prune a model in tab 1 first.")
    if run not in session.runs:
        raise FieldError("run", f"choose one of this session's runs: {', '.join(session.runs)}")
    if prompt is not None and not isinstance(prompt, str):
        raise FieldError("prompt", f"the prompt must be text, got {prompt!r}")
    limits = get_limits()
    check_text_size(prompt, "prompt", "the prompt", limits.max_prompt_chars,
                    "WANDA_VIZ_MAX_PROMPT_CHARS")
    if not (prompt or "").strip():
        raise FieldError("prompt", "the prompt is empty")
    check_range("max_new_tokens", max_new_tokens, 1, limits.max_new_tokens)


@readable
def on_generate(session: Session, progress=gr.Progress(track_tqdm=True), *,
                prompt: str, run: str, max_new_tokens: int, do_sample: bool,
                temperature: float, top_p: float, seed: int, chat: bool = False) -> dict:
    """Dense and pruned continuations of the same prompt with the same decoding settings."""
    check_generate(session, prompt=prompt, run=run, max_new_tokens=max_new_tokens)
    session.generation = jobs.generate_job(
        session.model, {run: session.runs[run]}, prompt, limits=get_limits(),
        max_new_tokens=int(max_new_tokens), do_sample=bool(do_sample),
        temperature=float(temperature), top_p=float(top_p), seed=int(seed or 0), chat=bool(chat))
    return {"session": session, **on_render(session)}


def on_render(session: Session) -> dict:
    """Dense tokens, pruned tokens, the summary table and the token-probability figure."""
    comparison = session.generation
    if comparison is None:
        return {"takeaway": "", "dense": [], "pruned": [], "table": None, "probs": None,
                "protocol": ""}
    pruned = next((name for name in comparison.results if name != "dense"), "")
    probs = figures.plot_generation_probs(comparison)
    return {"takeaway": generation_takeaway(views.generation_summary(comparison)),
            "protocol": f"**Protocol:** {figures.figure_protocol(probs)}",
            "dense": views.highlighted_tokens(comparison, "dense"),
            "pruned": views.highlighted_tokens(comparison, pruned),
            "table": views.generation_table(comparison),
            "probs": probs}
