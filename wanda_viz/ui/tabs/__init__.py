"""One module per dashboard tab (``build``, ``wire``, its handlers), registered in
``ui.app.TABS``."""
