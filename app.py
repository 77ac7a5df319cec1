"""wanda-viz dashboard: ``python app.py`` locally, or the entry point of a Hugging Face Space.

Settings come from environment variables (see wanda_viz/service/limits.py): WANDA_VIZ_MODEL,
WANDA_VIZ_DATA, WANDA_VIZ_MAX_* and GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
"""
from wanda_viz.ui import build_demo

demo = build_demo()

if __name__ == "__main__":
    demo.queue(max_size=32, default_concurrency_limit=1).launch()
