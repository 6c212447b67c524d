"""Image files through Pillow: what an image is, and the copy an email links to.

Outside files are hostile until read: a file is opened only in the formats email clients
show (PNG, JPEG, GIF, WebP), no bigger than MAX_BYTES on disk nor MAX_PIXELS decoded
(Pillow's decompression-bomb limit is set to it), and only its header is read to check it.
The published copy is at most twice the email's content width (sharp on high-density
screens, no bigger), turned upright from its EXIF orientation, and without metadata: a
phone photo's EXIF carries where it was taken. An image that needs neither is published
byte for byte; an animated one too, since resizing would keep only its first frame.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 20_000_000
MAX_PIXELS = 40_000_000  # a 8000 x 5000 photo; far past anything an email shows
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp"}

# Pillow warns past MAX_IMAGE_PIXELS and refuses past twice that; both are refused here.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass(frozen=True)
class ImageInfo:
    """An image file's format and its size in pixels as shown (EXIF orientation applied)."""

    format: str
    width: int
    height: int


@dataclass(frozen=True)
class Prepared:
    """The bytes to publish and their size in pixels."""

    data: bytes
    format: str
    width: int
    height: int


def too_big(size: int) -> str | None:
    """Why a file of `size` bytes is refused before it is read, or None."""
    if size > MAX_BYTES:
        return (
            f"is {size / 1_000_000:.0f} MB; an image in an email may be at most "
            f"{MAX_BYTES // 1_000_000} MB (make it smaller first)"
        )
    return None


def inspect(data: bytes) -> ImageInfo:
    """Check that `data` is an image email can show, reading only its header.

    Raises ValueError saying what is wrong, for the caller to name the file.
    """
    problem = too_big(len(data))
    if problem:
        raise ValueError(problem)
    with _opened(data) as image:
        width, height = _upright_size(image)
        return ImageInfo(format=str(image.format), width=width, height=height)


def prepare(data: bytes, max_width: int) -> Prepared:
    """The copy to publish: upright, at most `max_width` wide, never upscaled, no metadata."""
    with _opened(data) as image:
        fmt = str(image.format)
        width, height = _upright_size(image)
        if getattr(image, "is_animated", False):
            return Prepared(data, fmt, width, height)
        resize = width > max_width
        if not resize and not _has_metadata(image):
            return Prepared(data, fmt, width, height)
        try:
            if resize and fmt == "JPEG":
                # Decode at 1/2, 1/4 or 1/8 scale where that still leaves enough pixels:
                # a 12-megapixel photo then costs a quarter of the time.
                wanted = (max_width, max(1, round(height * max_width / width)))
                stored = wanted if image.size == (width, height) else wanted[::-1]
                image.draft(image.mode, stored)
            image.load()
            upright = ImageOps.exif_transpose(image)
            if resize:
                height = max(1, round(height * max_width / width))
                width = max_width
                upright = _resized(upright, (width, height))
            return Prepared(_encoded(upright, fmt, image.info), fmt, width, height)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ValueError(f"cannot be read as {fmt} ({_reason(exc)})") from exc


class _opened:
    """Image.open over bytes, limited to FORMATS; each way it fails becomes a ValueError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.image: Image.Image | None = None

    def __enter__(self) -> Image.Image:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                self.image = Image.open(io.BytesIO(self.data), formats=FORMATS)
            except UnidentifiedImageError as exc:
                raise ValueError("is not an image email can show (PNG, JPEG, GIF or WebP)") from exc
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise ValueError(_pixels_problem()) from exc
            except (OSError, ValueError, SyntaxError) as exc:
                raise ValueError(f"is not a readable image ({_reason(exc)})") from exc
        width, height = self.image.size
        if width * height > MAX_PIXELS:
            self.image.close()
            raise ValueError(f"is {width} x {height} pixels: {_pixels_problem()}")
        if width < 1 or height < 1:
            self.image.close()
            raise ValueError("is an image with no pixels")
        return self.image

    def __exit__(self, *exc: object) -> None:
        if self.image is not None:
            self.image.close()


def _pixels_problem() -> str:
    return f"too many pixels (at most {MAX_PIXELS // 1_000_000} million; make it smaller first)"


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """The size as displayed: EXIF orientations 5 to 8 turn the picture a quarter."""
    width, height = image.size
    try:
        orientation = image.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError):
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _has_metadata(image: Image.Image) -> bool:
    """Whether the file carries anything about where, when or with what it was made."""
    info = image.info
    if any(info.get(key) for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment")):
        return True
    text = getattr(image, "text", None)  # PNG tEXt/iTXt chunks
    return bool(text)


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    # Palette and 1-bit images resize with nearest neighbour in Pillow; in RGB(A) they can
    # be filtered properly, then go back to a palette for GIF.
    if image.mode in ("P", "1", "LA", "PA"):
        image = image.convert("RGBA")
    elif image.mode not in ("RGB", "RGBA", "L", "CMYK"):
        image = image.convert("RGB")
    return image.resize(size, Image.Resampling.LANCZOS)


def _encoded(image: Image.Image, fmt: str, info: Mapping[Any, Any]) -> bytes:
    """Save without EXIF, XMP or text; the colour profile stays (colours depend on it)."""
    options: dict[str, object] = {}
    icc = info.get("icc_profile")
    if icc and fmt != "GIF":
        options["icc_profile"] = icc
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        options.update(quality=85, optimize=True, progressive=True)
    elif fmt == "PNG":
        options.update(optimize=True)
    elif fmt == "WEBP":
        options.update(quality=85, method=4)
    elif fmt == "GIF" and image.mode not in ("P", "L"):
        image = image.convert("RGBA").quantize(256)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()
