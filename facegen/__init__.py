"""facegen: face super-resolution and facial-expression synthesis with GANs."""

__version__ = "0.1.0"
