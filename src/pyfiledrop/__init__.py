"""pyfiledrop: receive very large files fast."""

__version__ = "0.1.0"
