"""ecommerce-saga: e-commerce order processing on a durable, in-process saga engine."""

__version__ = "0.1.0"
