"""The command-line client: `pyfiledrop upload` and `pyfiledrop download`."""
