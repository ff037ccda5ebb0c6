"""Protocol handlers: HTTP in, calls to the upload core out. They know nothing of storage."""
