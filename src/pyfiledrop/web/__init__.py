"""The HTTP side: the Starlette app, the owner cookie, downloads and the page."""
