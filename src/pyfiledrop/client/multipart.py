"""The multipart/form-data framing of one Dropzone chunk, built around bytes streamed from disk."""


def _filename_for_header(name: str) -> bytes:
    # What browsers do for multipart file names (WHATWG HTML form encoding).
    escaped = name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    return escaped.encode("utf-8")


def multipart_frame(
    boundary: str, fields: list[tuple[str, str]], filename: str
) -> tuple[bytes, bytes]:
    """The bytes before and after the file part's data: the dz* fields first, as Dropzone sends."""
    dash = b"--" + boundary.encode("ascii")
    head = bytearray()
    for name, value in fields:
        head += dash + b'\r\nContent-Disposition: form-data; name="' + name.encode("ascii")
        head += b'"\r\n\r\n' + value.encode("utf-8") + b"\r\n"
    head += dash + b'\r\nContent-Disposition: form-data; name="file"; filename="'
    head += _filename_for_header(filename) + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
    return bytes(head), b"\r\n" + dash + b"--\r\n"
