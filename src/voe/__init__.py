"""voe: a virtual operating environment for datacenters."""

__version__ = "0.1.0"
