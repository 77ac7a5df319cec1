"""wanda-viz dashboard: ``python app.py`` locally, or the entry point of a Hugging Face Space.

Settings come from environment variables (see wanda_viz/service/limits.py and the README's host
settings): WANDA_VIZ_MODEL, WANDA_VIZ_DATA, WANDA_VIZ_MAX_*, WANDA_VIZ_LOG_LEVEL and
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
"""
from wanda_viz.ui import build_demo, configure_logging, serve

configure_logging()  # evictions, recomputations, refusals, cancels: one line each, on stderr
demo = build_demo()

if __name__ == "__main__":
    serve(demo)
