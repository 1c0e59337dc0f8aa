"""Model families, one module per paper; shared blocks in `layers.py`."""
