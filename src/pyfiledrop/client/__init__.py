"""The command-line uploader and downloader."""
