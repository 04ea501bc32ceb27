"""Still images (JPEG, PNG, GIF, BMP, TIFF, WebP, MPO, PPM) through Pillow.

A file is a still image when Pillow identifies it as one of `IMAGE_FORMATS` from its bytes, never
by its extension. The pixel limit is checked on the header before any pixel is decoded.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from scanner.media.files import check_readable_file
from scanner.media.limits import DEFAULT_MAX_PIXELS
from scanner.models import MediaError, MediaInfo, MediaKind

# The list is explicit because some Pillow plugins (TGA, for example) accept almost any byte
# prefix and would claim text files or audio as "images".
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "MPO", "PPM")


def open_image(path: Path, max_pixels: int) -> Image.Image | None:
    """Open a still image lazily (header only), or return None when it is not an image.

    Raises MediaError for a broken header or more than `max_pixels` pixels. Pillow's own global
    decompression-bomb limit is left untouched (changing it would affect every thread); its
    warning is silenced and its hard error reported as "too large".
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.init()  # registers all plugins (idempotent); open() needs them to filter formats
            formats = [f for f in IMAGE_FORMATS if f in Image.OPEN]
            img = Image.open(path, formats=formats)
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as exc:
        # Pillow's own hard limit (2x its warning size) fires before the header is returned.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        declared = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "a huge size"
        raise MediaError(
            f"image too large: the header declares {declared} (limit {max_pixels / 1e6:.0f}); "
            "not decoded (decompression bomb guard)"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        # Recognised as an image but the header is broken.
        raise MediaError(f"corrupt image: {exc}") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        img.close()
        raise MediaError(f"corrupt image: invalid size {width}x{height}")
    if width * height > max_pixels:
        img.close()
        raise MediaError(
            f"image too large: {width}x{height} = {width * height / 1e6:.0f} megapixels "
            f"(limit {max_pixels / 1e6:.0f})"
        )
    return img


def display_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) as the image is meant to be viewed: EXIF orientations 5-8 swap them."""
    width, height = img.size
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def probe_image(path: Path, max_pixels: int) -> MediaInfo | None:
    """A still image's `MediaInfo` (kind IMAGE, duration 0, displayed size), None when `path` is not
    an image. Raises MediaError for a truncated or corrupt image or one above `max_pixels`."""
    img = open_image(path, max_pixels)
    if img is None:
        return None
    with img:
        fmt = (img.format or "image").lower()
        width, height = display_size(img)
        try:
            # A reduced decode proves the pixel data is present (catches truncated files) at a
            # fraction of the cost; draft() only helps JPEG, other formats decode fully.
            img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
        except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error, ...
            raise MediaError(f"truncated or corrupt {fmt} image: {exc}") from None
    return MediaInfo(kind=MediaKind.IMAGE, duration_s=0.0, width=width, height=height, container=fmt)


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a still image to an RGB uint8 array of shape (height, width, 3), EXIF orientation applied.

    Raises MediaError for anything that is not a readable image within `max_pixels`.
    """
    path = Path(path)
    check_readable_file(path)
    img = open_image(path, max_pixels)
    if img is None:
        raise MediaError("not an image file (format not recognised)")
    with img:
        try:
            upright = ImageOps.exif_transpose(img)
            return np.asarray(upright.convert("RGB"))
        except Exception as exc:
            raise MediaError(f"truncated or corrupt image: {exc}") from None
