"""The web demo of a trained run (`alae serve RUN`): a small JSON server and one plain page."""
