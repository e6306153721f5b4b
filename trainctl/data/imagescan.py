"""What an image folder holds: its class folders and image files, checked before anything is decoded.

Why not torchvision's ImageFolder: it takes any folder as a class (`.ipynb_checkpoints` included), numbers the
classes of train/ and test/ independently (so differing folders silently swap labels), skips unreadable
subfolders without a word, and leaves a corrupt image to crash a DataLoader worker mid-epoch. Here each of those
is an error naming the folder, or a warning naming the skipped files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from trainctl.data.locate import blocked_ancestor, unreadable_folder_error
from trainctl.errors import UserError

log = logging.getLogger("trainctl")
SHOWN = 5  # skipped files named in a warning; the rest are counted
PROBE_IN_WORKERS_FROM = 2000  # fewer files are probed in-process: starting workers would cost more


@dataclass
class SplitFiles:
    """One split's class folders (sorted names) and its files as (path, class name)."""

    folder: Path
    classes: tuple[str, ...]
    files: list[tuple[str, str]]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    skipped_links: list[str] = field(default_factory=list)  # folder links that lead to a folder already read


def _visible(name: str) -> bool:
    return not name.startswith(".")  # .DS_Store, .ipynb_checkpoints, editors' swap files: never data


def list_entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return sorted((e for e in entries if _visible(e.name)), key=lambda e: e.name)
    except PermissionError:
        raise unreadable_folder_error(folder, "dataset.root", blocked_ancestor(folder)) from None


def _identity(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)  # through links: the folder a link leads to
    except OSError:
        return None
    return found.st_dev, found.st_ino


def scan_split(folder: Path) -> SplitFiles:
    """The class folders of one split and every visible file under them (recursively, in a stable order).

    Folder links are followed (a class folder may live elsewhere), but each real folder is read once: a link
    back up the tree (a loop) or to a folder already read is skipped and named, instead of reading the same
    images again, about 40 levels deep for a loop, with another class's label."""
    entries = list_entries(folder)
    classes = tuple(e.name for e in entries if e.is_dir())
    files: list[tuple[str, str]] = []
    # The split folder, the folders above it (a link to one is a loop) and every class folder are read as
    # themselves only: a link to another class's folder would give its images a second label.
    above = [folder.resolve(), *folder.resolve().parents]
    seen = {identity for path in above if (identity := _identity(str(path))) is not None}
    tops: dict[str, tuple[int, int] | None] = {}
    links: list[str] = []
    for name in classes:
        top = str(folder / name)
        identity = _identity(top)
        if identity in seen or identity in tops.values():
            links.append(top)
            continue
        tops[name] = identity
    seen |= {identity for identity in tops.values() if identity is not None}
    for name in tops:
        errors: list[OSError] = []
        top = str(folder / name)
        found: list[tuple[str, list[str]]] = []
        for dirpath, dirnames, filenames in os.walk(top, onerror=errors.append, followlinks=True):
            kept = []
            for d in sorted(dirnames):
                if not _visible(d):
                    continue
                identity = _identity(os.path.join(dirpath, d))
                if identity is None or identity in seen:
                    links.append(os.path.join(dirpath, d))
                    continue
                seen.add(identity)
                kept.append(d)
            dirnames[:] = kept  # os.walk descends into these only: pruned before it goes on
            found.append((dirpath, sorted(f for f in filenames if _visible(f))))
        files += [(os.path.join(dirpath, f), name) for dirpath, names in sorted(found) for f in names]
        for error in errors:
            if isinstance(error, PermissionError):
                bad = Path(error.filename)
                raise unreadable_folder_error(bad, "dataset.root", blocked_ancestor(bad))
    return SplitFiles(folder, classes, files, skipped_links=links)


def skipped_links_message(root: Path, links: list[str]) -> str:
    named = ", ".join(f"{os.path.relpath(link, root)} -> {os.path.realpath(link)}" for link in links[:SHOWN])
    more = f", and {len(links) - SHOWN} more" if len(links) > SHOWN else ""
    return (f"skipped {len(links)} folder link(s) under {root} that lead to a folder already read (a loop, or a "
            f"second way to the same images, which would count them twice): {named}{more}. Remove the link(s), "
            "or copy the images if they belong there too")


def check_classes(train: SplitFiles, others: list[SplitFiles]) -> None:
    """train/ needs two class folders or more, and test/ (val/) the same ones: labels are class names."""
    layout = f"{train.folder}/<class>/<image>"
    if not train.classes:
        entries = list_entries(train.folder)
        loose = f" (it holds {len(entries)} file(s) but no folders)" if entries else " (it is empty)"
        raise UserError(f"{train.folder} has no class folders{loose}: put each class's images in a folder of "
                        f"its own, {layout}.")
    if len(train.classes) < 2:
        raise UserError(f"{train.folder} has a single class folder ('{train.classes[0]}'): a classifier needs at "
                        "least two classes, or it learns nothing and reports 100% accuracy. Add a folder per "
                        f"class, {layout}.")
    for other in others:
        missing = sorted(set(train.classes) - set(other.classes))
        extra = sorted(set(other.classes) - set(train.classes))
        if missing or extra:
            parts = ([f"missing there: {', '.join(missing)}"] if missing else []) + (
                [f"not in {train.folder.name}/: {', '.join(extra)}"] if extra else [])
            raise UserError(f"the class folders of {other.folder} differ from those of {train.folder} "
                            f"({'; '.join(parts)}). Both must hold the same class folders (the folder names are "
                            "the labels): add, rename or remove folders so they match.")


def probe(path: str) -> str:
    """Why `path` is not a readable image ('' when it is): a header check, no decoding."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):  # a FIFO or device named .png: opening it would block or read forever
        return "not a regular file"
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018  (opening parses the header; the size must be there)
        return ""
    except PermissionError:
        return "permission denied"
    except UnidentifiedImageError:
        return "not an image"
    except Exception as e:  # noqa: BLE001  (image plugins fail in many ways; each means "unreadable")
        return str(e) or type(e).__name__


def _probe_batch(paths: list[str]) -> list[str]:
    return [probe(p) for p in paths]


def probe_all(splits: list[SplitFiles], num_workers: int) -> None:
    """Move each split's unreadable files to its `skipped` list."""
    paths = [path for split in splits for path, _ in split.files]
    if len(paths) < PROBE_IN_WORKERS_FROM or num_workers == 0:
        reasons = [probe(p) for p in paths]
    else:
        from torch.utils.data import DataLoader

        loader = DataLoader(paths, batch_size=256, num_workers=num_workers, collate_fn=_probe_batch)
        reasons = [r for batch in loader for r in batch]
    start = 0
    for split in splits:
        mine = reasons[start : start + len(split.files)]
        start += len(split.files)
        split.skipped = [(path, why) for (path, _), why in zip(split.files, mine) if why]
        split.files = [item for item, why in zip(split.files, mine) if not why]


def skipped_files_message(root: Path, skipped: list[tuple[str, str]], total: int) -> str:
    named = ", ".join(f"{os.path.relpath(path, root)} ({why})" for path, why in skipped[:SHOWN])
    more = f", and {len(skipped) - SHOWN} more" if len(skipped) > SHOWN else ""
    return f"skipped {len(skipped)} unreadable file(s) of {total} under {root}: {named}{more}"


def check_readable(root: Path, splits: list[SplitFiles]) -> None:
    """Warn about skipped files; refuse a split left without images, or a training class left without any."""
    links = [link for split in splits for link in split.skipped_links]
    if links:
        log.warning("%s", skipped_links_message(root, links))
    skipped = [item for split in splits for item in split.skipped]
    if skipped:
        log.warning("%s", skipped_files_message(root, skipped, sum(len(s.files) + len(s.skipped) for s in splits)))
    for split in splits:
        if not split.files:
            found = (f"all {len(split.skipped)} file(s) in its class folders are unreadable, e.g. "
                     f"{split.skipped[0][0]} ({split.skipped[0][1]})" if split.skipped
                     else f"its class folders ({', '.join(split.classes)}) are empty")
            raise UserError(f"{split.folder} has no images: {found}. Put images (PNG, JPEG, ...) in "
                            f"{split.folder}/<class>/.")
    train = splits[0]
    empty = sorted(set(train.classes) - {name for _, name in train.files})
    if empty:
        raise UserError(f"class folder(s) {', '.join(str(train.folder / c) for c in empty)} hold no readable "
                        "images: a class needs training images. Add images, or remove the folder(s) from every split.")
