"""Which study `trainctl sweep-report TARGET [study=NAME]` means, opened read-only in spirit: nothing is created.

TARGET is a sweep directory (its optimization_results.yaml names the study and its storage; a sweep that never
finished still has its optuna.db or optuna.journal), a storage file, or a storage URL. Every way it can be wrong
is one UserError that names the culprit and the fix.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import optuna
import yaml

from trainctl.errors import UserError
from trainctl.registry import did_you_mean
from trainctl.sweep.storage import check_intact, open_storage, storage_files, storage_spec

RESULTS = "optimization_results.yaml"
DEFAULT_FILES = {"optuna.db": "sqlite", "optuna.journal": "journal"}
GIVE = "give the directory a sweep wrote (runs/optuna/<study>), its optuna.db, or a storage URL (sqlite:///PATH, " \
       "journal:PATH, postgresql://...)"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _from_directory(folder: Path) -> tuple[str, str | None, list[str] | None]:
    """(storage spec, study name or None, objective names or None) of a sweep directory.

    The directory's own optuna.db or optuna.journal comes first: a sweep directory that was copied or moved
    still records the storage path of the original, and reading that would report on another study. The recorded
    storage is followed only when the directory holds none (a database server, a journal elsewhere), and never
    when it is the default file of another sweep directory."""
    results = folder / RESULTS
    name: str | None = None
    objectives: list[str] | None = None
    recorded: str | None = None
    if results.is_file():
        try:
            data = yaml.safe_load(results.read_text()) or {}
            recorded, name, objectives = str(data["storage"]), data.get("study_name"), data.get("objectives")
        except (yaml.YAMLError, KeyError, TypeError, ValueError, OSError) as e:  # ValueError: bytes no UTF-8
            raise UserError(f"{results} is not a sweep's results file ({_first_line(e)}): {GIVE}") from None
    for default, kind in DEFAULT_FILES.items():
        if (folder / default).is_file():
            return storage_spec(kind, folder), name, objectives
    if recorded is not None:
        elsewhere = [p for p in storage_files(recorded) if p.name in DEFAULT_FILES and _is_sweep_dir(p.parent)]
        if elsewhere:
            raise UserError(f"{folder} holds no {' or '.join(DEFAULT_FILES)}, and its {RESULTS} names the storage "
                            f"of another sweep directory ({elsewhere[0]}): it looks copied without its study. Copy "
                            f"that file into {folder}, or give it itself: trainctl sweep-report {elsewhere[0]}")
        return recorded, name, objectives
    if (folder / "multirun.yaml").is_file():  # an Optuna sweep's directory without its study (grid dirs go elsewhere)
        raise UserError(f"{folder} is an Optuna sweep directory without its study: it holds no "
                        f"{' or '.join(DEFAULT_FILES)} (removed, or not copied with it). Copy the sweep's optuna.db "
                        f"into {folder}, or give the storage itself: trainctl sweep-report sqlite:///PATH")
    inside = sorted(str(p) for p in [*folder.glob("*"), *folder.glob("*/*")] if _is_sweep_dir(p))
    hint = f" (sweep directories in it: {', '.join(inside[:5])}{', ...' if len(inside) > 5 else ''})" if inside else ""
    raise UserError(f"{folder} is not a sweep directory: it holds none of {RESULTS}, "
                    f"{', '.join(DEFAULT_FILES)}{hint}; {GIVE}")


def _is_sweep_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in (RESULTS, *DEFAULT_FILES))


def _spec_and_dir(target: str) -> tuple[str, Path, str | None, list[str] | None]:
    """(storage spec, where the report goes, study name or None, objective names or None)."""
    if "://" in target or target.startswith("journal:"):
        spec = storage_spec(target, Path("."))
        files = storage_files(spec)
        return spec, files[0].parent if files else Path("runs") / "optuna", None, None
    path = Path(target).expanduser()
    if path.is_dir():
        spec, name, objectives = _from_directory(path)
        return spec, path, name, objectives
    if path.is_file():
        kind = "journal" if path.suffix == ".journal" else "sqlite"
        spec = f"journal:{path.resolve()}" if kind == "journal" else f"sqlite:///{path.resolve()}"
        return spec, path.parent, None, None
    raise UserError(f"{target}: no such directory or file; {GIVE}")


def _check_files(spec: str, target: str) -> None:
    """The storage's files exist and, for SQLite, hold Optuna's tables: opening anything else would create or
    change a file."""
    if spec == "memory":
        raise UserError(f"{target}: the study lived in memory (hydra.sweeper.storage=memory) and ended with its "
                        "sweep; run the sweep with the default storage to report on it later")
    for path in storage_files(spec):
        if not path.is_file():
            what = "is not a regular file (a folder, fifo or device)" if path.exists() else "does not exist"
            raise UserError(f"{target}: the study's storage {path} {what}; {GIVE}")
        if spec.startswith("sqlite:"):
            check_intact(path, target)  # damaged (truncated) is not "no Optuna database"
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                    found = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='studies'").fetchone()
            except sqlite3.Error as e:
                raise UserError(f"{path} is not an Optuna database ({_first_line(e)}); {GIVE}") from None
            if found is None:
                raise UserError(f"{path} is not an Optuna database (it has no studies table); {GIVE}")


def _pick(names: list[str], wanted: str | None, spec: str) -> str:
    if wanted is not None:
        if wanted not in names:
            raise UserError(f"study={wanted}: no such study in {spec}{did_you_mean(wanted, names)} "
                            f"(studies: {', '.join(names) or 'none'})")
        return wanted
    if len(names) == 1:
        return names[0]
    if not names:
        raise UserError(f"{spec} holds no study; {GIVE}")
    raise UserError(f"{spec} holds several studies ({', '.join(names)}): name one with study=NAME")


def find_study(target: str, study_name: str | None = None) -> tuple[optuna.Study, Path, list[str] | None]:
    """(the study, the directory its report goes to, its objective names as the sweep recorded them or None)."""
    spec, out_dir, recorded, objectives = _spec_and_dir(target)
    _check_files(spec, target)
    try:
        storage: Any = open_storage(spec)
        names = optuna.study.get_all_study_names(storage)
        name = _pick(names, study_name or recorded, spec)
        return optuna.load_study(study_name=name, storage=storage), out_dir, objectives
    except UserError:
        raise
    except Exception as e:  # a server out of reach, a file of another format, a schema from another Optuna
        raise UserError(f"cannot read the study from {spec} ({type(e).__name__}: {_first_line(e)}); {GIVE}") from None
