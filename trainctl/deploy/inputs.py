"""The inputs `trainctl predict` reads: image files (one, a folder searched recursively, or a glob), IDX files and
`.npy`/`.pt` tensor files, turned into batches of the shape the model was trained on.

Reading files is data, never code: `.npy` loads with `allow_pickle=False`, `.pt` with `weights_only=True`, IDX
and images are decoded as bytes. A file that cannot be read is named and skipped; a readable input of a shape
the model cannot take is one error.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from trainctl.deploy.preprocess import Adjustments, InputRules, fit_images
from trainctl.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
TENSOR_SUFFIXES = (".npy", ".pt")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
FLOAT_SLACK = 1e-3  # rounding in a float image saved as [0, 1]


def kind_of(path: Path) -> str | None:
    """'image', 'npy', 'pt', 'idx', or None for a file predict does not read."""
    name = path.name.lower()
    if name.endswith(IMAGE_SUFFIXES):
        return "image"
    if name.endswith(TENSOR_SUFFIXES):
        return name.rsplit(".", 1)[1]
    bare = name.removesuffix(".gz")
    if bare.endswith((".idx", "-ubyte")) or ("idx" in bare and "ubyte" in bare):
        return "idx"
    return None


def find_inputs(value: str) -> tuple[list[Path], int]:
    """The files `inputs=` names, in sorted order, and how many files a folder or glob held that predict does
    not read. A folder gives its images and .npy/.pt tensor files (recursively, hidden entries left out; not IDX
    files, whose label files sit beside the images); a glob gives every file it matches that is an image, IDX or
    tensor file."""
    path = Path(value).expanduser()
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        inputs = [p for p in found if kind_of(p) in ("image", "npy", "pt")]
        if not inputs:
            raise UserError(f"inputs={value} is a folder without images ({', '.join(IMAGE_SUFFIXES[:4])}, ...) or "
                            ".npy/.pt tensor files: put them there, or name an IDX file")
        return inputs, len(found) - len(inputs)
    if path.is_file():
        if kind_of(path) is None:
            raise UserError(f"inputs={value} is not an image ({', '.join(IMAGE_SUFFIXES[:4])}, ...), a .npy or "
                            ".pt tensor file, or an IDX file (*-ubyte, *.idx, optionally .gz)")
        return [path], 0
    if glob.has_magic(value):
        matched = sorted(Path(p) for p in glob.glob(os.path.expanduser(value), recursive=True) if Path(p).is_file())
        readable = [p for p in matched if kind_of(p) is not None]
        if not readable:
            raise UserError(f"inputs={value} matches no image, tensor or IDX file"
                            + (f" ({len(matched)} other file(s))" if matched else ""))
        return readable, len(matched) - len(readable)
    raise UserError(f"inputs={value} does not exist: give an image, a folder of images, a glob (quoted: "
                    "'inputs=photos/*.jpg'), an IDX file or a .npy/.pt tensor file")


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


@dataclass
class Chunk:
    """A batch of inputs ready for the preprocessing: images [N, C, H, W] at the trained size (uint8 pixels or
    floats in [0, 1]), other inputs as float tensors [N, *input_shape]."""

    names: list[str]
    x: torch.Tensor


@dataclass
class InputReader:
    """Reads files into chunks of `batch_size`, recording what it skipped and what it changed."""

    rules: InputRules
    batch_size: int
    model_name: str
    adjustments: Adjustments = field(default_factory=Adjustments)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)

    def chunks(self, files: list[Path]) -> Iterator[Chunk]:
        """The files' inputs in order: runs of image files in batches, each tensor file in its own batches."""
        images: list[Path] = []
        for path in files:
            if kind_of(path) == "image":
                images.append(path)
                if len(images) == self.batch_size:
                    yield from self._image_chunk(images)
                    images = []
                continue
            yield from self._image_chunk(images)
            images = []
            yield from self._tensor_chunks(path)
        yield from self._image_chunk(images)

    def _image_chunk(self, paths: list[Path]) -> Iterator[Chunk]:
        if not paths:
            return
        if not self.rules.images:
            raise UserError(f"{paths[0]} is an image, but {self.model_name} takes inputs of shape "
                            f"{self.rules.shape_text}, not images: give a .npy or .pt tensor file")
        decoded = [(str(p), self._decode(p)) for p in paths]
        kept = [(name, x) for name, x in decoded if x is not None]
        if kept:
            yield Chunk([name for name, _ in kept], torch.stack([x for _, x in kept]))

    def _decode(self, path: Path) -> torch.Tensor | None:
        """One image as uint8 [C, H, W] with the model's channels and size (as `imagefolder` training reads
        images: PIL convert, then bilinear resize), or None when it cannot be decoded."""
        from PIL import Image

        channels, height, width = self.rules.input_shape
        try:
            with Image.open(path) as image:
                image.load()
                grey = image.mode in GREY_MODES
                image = image.convert("L" if channels == 1 else "RGB")
                if image.size != (width, height):
                    self.adjustments.resized[(image.height, image.width)] += 1
                    image = image.resize((width, height), Image.BILINEAR)
                pixels = np.array(image)
        except Exception as e:  # noqa: BLE001  (any decoder failure: name the file, go on)
            self.skipped.append((str(path), _first_line(e)))
            return None
        if grey and channels == 3:
            self.adjustments.to_rgb += 1
        elif not grey and channels == 1:
            self.adjustments.to_grey += 1
        tensor = torch.from_numpy(pixels)
        return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()

    def _tensor_chunks(self, path: Path) -> Iterator[Chunk]:
        tensor = self._load(path)
        if tensor is None:
            return
        batch = self._image_batch(tensor, path) if self.rules.images else self._sample_batch(tensor, path)
        for start in range(0, batch.shape[0], self.batch_size):
            x = batch[start : start + self.batch_size]
            if self.rules.images:
                x = fit_images(x, self.rules, self.adjustments)
            yield Chunk([f"{path}[{i}]" for i in range(start, start + x.shape[0])], x)

    def _load(self, path: Path) -> torch.Tensor | None:
        """The tensor a file holds, or None (recorded as skipped) when the file cannot be read."""
        kind = kind_of(path)
        try:
            if kind == "npy":
                array = np.load(path, allow_pickle=False)
                return torch.from_numpy(np.ascontiguousarray(array))
            if kind == "pt":
                loaded = torch.load(path, map_location="cpu", weights_only=True)
            else:
                from trainctl.data.idx import read_idx

                loaded = read_idx(path).clone()  # the reader caches its tensors: never change them in place
        except Exception as e:  # noqa: BLE001  (a corrupt file: name it, go on with the others)
            self.skipped.append((str(path), _first_line(e)))
            return None
        if not isinstance(loaded, torch.Tensor):
            raise UserError(f"{path} holds a {type(loaded).__name__}, not a tensor: save the inputs with "
                            "torch.save(tensor, path)")
        return loaded

    def _image_batch(self, t: torch.Tensor, path: Path) -> torch.Tensor:
        """[N, C, H, W] images from the layouts a tensor file may hold: [N, C, H, W], [N, H, W] (grey),
        one image [C, H, W] or [H, W], and channels last ([N, H, W, C], [H, W, C])."""
        shape = tuple(t.shape)
        if t.dim() == 2:
            t = t[None, None]
        elif t.dim() == 3:
            if shape[0] == self.rules.input_shape[0]:
                t = t[None]  # one image [C, H, W]
            elif shape[2] in (1, 3) and shape[0] not in (1, 3):
                t = t.permute(2, 0, 1)[None]  # one image [H, W, C]
                self.adjustments.channels_last += 1
            else:
                t = t[:, None]  # N grey images [N, H, W]
        elif t.dim() == 4 and shape[1] not in (1, 3) and shape[3] in (1, 3):
            t = t.permute(0, 3, 1, 2)
            self.adjustments.channels_last += shape[0]
        if t.dim() != 4 or t.shape[1] not in (1, 3) or min(t.shape[2:], default=0) < 1 or t.shape[0] == 0:
            c, h, w = self.rules.input_shape
            raise UserError(f"{path} holds a tensor of shape {list(shape)}, which {self.model_name} cannot take: it "
                            f"takes images of {c}x{h}x{w}, as [N, C, H, W], [N, H, W] (grey) or one image "
                            "[C, H, W], with 1 or 3 channels (grey and RGB are converted, other sizes resized)")
        return self._pixels(t.contiguous(), path)

    def _pixels(self, t: torch.Tensor, path: Path) -> torch.Tensor:
        """uint8 pixels as they are, other integers when they are pixels, floats when they lie in [0, 1]."""
        if t.dtype == torch.uint8:
            return t
        if t.dtype == torch.bool or t.is_complex():
            raise UserError(f"{path} holds {t.dtype} values: images are uint8 pixels (0-255) or floats in [0, 1]")
        low, high = float(t.min()), float(t.max())
        if not t.is_floating_point():
            if low < 0 or high > 255:
                raise UserError(f"{path} holds integers from {low:g} to {high:g}: images are uint8 pixels "
                                "(0-255) or floats in [0, 1]")
            return t.to(torch.uint8)
        if not (low >= -FLOAT_SLACK and high <= 1 + FLOAT_SLACK):
            raise UserError(f"{path} holds floats from {low:.4g} to {high:.4g}: float images must lie in [0, 1] "
                            "(the model's normalisation is applied to them); pass raw pixels, not normalised ones")
        return t.float().clamp_(0.0, 1.0)

    def _sample_batch(self, t: torch.Tensor, path: Path) -> torch.Tensor:
        """[N, *input_shape] float samples for a model that does not take images."""
        shape, wanted = tuple(t.shape), self.rules.input_shape
        if shape == wanted:
            t = t[None]
        elif shape[1:] != wanted or shape[0] == 0:
            raise UserError(f"{path} holds a tensor of shape {list(shape)}, which {self.model_name} cannot take: it "
                            f"takes inputs of shape {list(wanted)} (one sample) or [N, {', '.join(map(str, wanted))}]"
                            " (a batch)")
        if t.dtype == torch.bool or t.is_complex():
            raise UserError(f"{path} holds {t.dtype} values: {self.model_name} takes real numbers")
        return t.float()


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
