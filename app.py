"""wanda-viz dashboard: ``python app.py`` locally, or the entry point of a Hugging Face Space.

Settings come from environment variables (see wanda_viz/service/limits.py and the README's host
settings): WANDA_VIZ_MODEL, WANDA_VIZ_DATA, WANDA_VIZ_MAX_*, WANDA_VIZ_LOG_LEVEL and
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
"""
import logging
import os

from wanda_viz.ui import build_demo, serve

# The lines a host reads (evictions, recomputations, refused requests, cancels, ended sessions):
# wanda_viz logs at INFO by default; other libraries stay at WARNING.
logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                    level=logging.WARNING)
logging.getLogger("wanda_viz").setLevel(os.environ.get("WANDA_VIZ_LOG_LEVEL", "INFO").upper())

demo = build_demo()

if __name__ == "__main__":
    serve(demo)
