"""Whether a file is a recording, by its name or else by its first bytes, before anything decodes it.

Used when walking folders and listing object prefixes: files with a media extension are taken as
recordings; others only when their first `SNIFF_BYTES` look like audio, video or an image
(`filetype` signatures). Decoding (`scanner.media.probe`) has the final word.
"""

from __future__ import annotations

import filetype

#: Extensions taken as recordings when walking folders; other files are sniffed by content.
MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .webm .mov .avi .wmv .flv .mpg .mpeg .ts .3gp "
    ".m4a .wav .mp3 .ogg .oga .opus .flac .aac .wma .aiff .aif "
    ".jpg .jpeg .png .webp .bmp .tif .tiff .gif".split()
)

#: Bytes read to sniff a file without a media extension (what `filetype` looks at).
SNIFF_BYTES = 8192


def looks_like_media(head: bytes) -> bool:
    """Whether a file's first bytes (`SNIFF_BYTES` of them) are those of audio, video or an image."""
    if not head:
        return False  # an empty file without a media extension is not a recording
    kind = filetype.guess(head)
    return kind is not None and kind.mime.split("/")[0] in ("video", "audio", "image")
