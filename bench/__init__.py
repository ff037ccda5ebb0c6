"""Side-by-side upload benchmark: pyfiledrop against the disk, nginx and peer servers."""
