"""`derm-nb download`: fetch an ISIC challenge archive into exactly the layout the catalog reads.

This module is the mechanism only: each archive's files are its `Source.remote` in the registry (the ISIC
challenges publish every file on a public bucket, `https://isic-challenge-data.s3.amazonaws.com/<year>/<file>`,
no login). pooch fetches each file into `<root>/.derm-nb-download/` through a temporary name (a broken transfer
leaves no file under the real name, and the next run starts it again), checks the MD5 where one is published and
otherwise the zip's own CRCs, then the image count; each zip is unpacked into a temporary folder beside its target
and renamed into place, so the catalog never sees half an archive. A target already there is never fetched again.
An archive behind its host's login (BUSI, HAM10000) has a `Source.manual` instead: the command says where to get it
and how to lay it out.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from derm_nb.data import registry
from derm_nb.data.archive import ArchiveFile, Manual, Remote
from derm_nb.data.errors import DataError
from derm_nb.data.sources import check_layout

PARTS = ("training", "validation", "test")
STAGING = ".derm-nb-download"   # under the root: downloads in progress and zips not yet unpacked
UNPACKING = ".unpacking-"        # prefix of the temporary folder a zip is unpacked into
TIMEOUT_S = 60


class DownloadError(DataError):
    """A file that could not be fetched, verified or unpacked, named with what to do about it."""


def remotes() -> dict[str, Remote]:
    """{name: its published files} of every registered source derm-nb fetches, by name."""
    return {name: s.remote for name, s in sorted(registry.SOURCES.items()) if s.remote is not None}


def manuals() -> dict[str, Manual]:
    """{name: where to get it} of every registered source behind its host's login, by name."""
    return {name: s.manual for name, s in sorted(registry.SOURCES.items()) if s.manual is not None}


def known() -> list[str]:
    """The names `derm-nb download` takes: the fetched sources, then those it points to."""
    return [*remotes(), *manuals()]


def select(name: str, parts: Iterable[str] | None = None) -> tuple[ArchiveFile, ...]:
    """The files of `name`'s archive in `parts` (None: every part it has); DownloadError naming a bad name or part."""
    if name not in remotes():
        raise DownloadError(f"unknown dataset '{name}' (known: {', '.join(known())})")
    files = remotes()[name].files
    available = [p for p in PARTS if any(f.part == p for f in files)]
    wanted = list(available if parts is None else parts)
    unknown = [p for p in wanted if p not in available]
    if unknown or not wanted:
        raise DownloadError(f"--parts {','.join(wanted)}: {name} has the parts {', '.join(available)}")
    return tuple(f for f in files if f.part in wanted)


def parse_parts(text: str | None) -> list[str] | None:
    """`--parts training,validation` as a list (None when not given)."""
    return None if text is None else [p.strip() for p in text.split(",") if p.strip()]


def _check(file: ArchiveFile) -> str:
    if file.md5:
        return f"MD5 {file.md5}"
    return "no MD5 published: zip CRCs checked" if file.is_zip else "no MD5 published"


def listing(name: str, parts: Iterable[str] | None = None, root: Path | None = None, mirror: str | None = None) -> str:
    """The dry run (`--list`): every file that would be fetched, its size, check and target, fetching nothing."""
    files, host = select(name, parts), mirror or remotes()[name].host
    lines = [f"{registry.get(name).title} ({name}): {len(files)} files from {files[0].url(host).rsplit('/', 1)[0]}/"]
    for file in files:
        target = f"{file.target(Path('.')).name}{'/' if file.is_zip else ''}"
        count = f", {file.images} images" if file.images else ""
        state = "" if root is None else ("   [present: not fetched]" if file.target(root).exists() else "   [to fetch]")
        check = f"{_check(file)}{count}"
        lines.append(f"  {file.part:<10} {file.name:<46} size: not verified   {check:<58} -> {target}{state}")
    lines.append(f"unpacked into {root or 'DIR'} in the layout `derm-nb data --source {name}` reads")
    return "\n".join(lines)


def _disk_message(err: OSError) -> str:
    full = err.errno in (errno.ENOSPC, errno.EDQUOT)
    return f"{err.strerror or err}" + ("; the disk is full: free some space and run the command again" if full else "")


def fetch(file: ArchiveFile, staging: Path, host: str, progress: bool = True) -> Path:
    """Download `file` from `host` into `staging` through pooch (temporary name, MD5 check, then rename); its path
    there."""
    import pooch
    import requests

    url = file.url(host)
    known = f"md5:{file.md5}" if file.md5 else None
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT_S)
    pooch.get_logger().setLevel("WARNING")  # we say what is fetched; its hint to pin a SHA256 is not for our users
    try:
        return Path(pooch.retrieve(url, known, fname=file.name, path=staging, downloader=downloader))
    except requests.HTTPError as err:
        status = err.response.status_code if err.response is not None else "an error"
        raise DownloadError(f"{file.name}: {url} answered {status}; check the address (--mirror) and run again") from err
    except requests.RequestException as err:
        raise DownloadError(f"{file.name}: the transfer from {url} broke off ({type(err).__name__}: {err}); "
                            "nothing was kept or unpacked: run the same command again to restart it") from err
    except ValueError as err:  # pooch: the MD5 of what arrived is not the published one
        wrong = "does not match the known hash" in str(err)
        raise DownloadError(f"{file.name}: " + ("wrong MD5, refused and deleted, nothing unpacked (" if wrong else "(")
                            + f"{err})") from err
    except OSError as err:
        raise DownloadError(f"{file.name}: cannot write it under {staging}: {_disk_message(err)}") from err


def verify_zip(path: Path, file: ArchiveFile) -> None:
    """CRC-check a zip without a published MD5 and count its images; DownloadError (zip deleted if damaged) if not."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = None if file.md5 else archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{file.name}: not a whole zip (truncated or corrupt: {err}); deleted, nothing unpacked: "
                            "run the command again to fetch it anew") from err
    if broken is not None:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{file.name}: {broken} fails its CRC check (a corrupt transfer); deleted, nothing "
                            "unpacked: run the command again to fetch it anew")
    found = sum(n.endswith(file.counted) and not n.startswith("__MACOSX/") for n in names)
    if file.images is not None and found != file.images:
        raise DownloadError(f"{file.name}: holds {found} '*{file.counted}' files where the archive has {file.images}; "
                            f"nothing unpacked (the zip is kept at {path})")


def _top_folder(names: list[str], folder: str) -> bool:
    """Whether every member of the zip sits inside `folder/` (as most ISIC zips ship)."""
    kept = [n for n in names if not n.startswith("__MACOSX/")]
    return bool(kept) and all(n.startswith(f"{folder}/") for n in kept)


def unpack(path: Path, target: Path) -> None:
    """Unpack the zip at `path` into a temporary folder beside `target`, then rename it to `target`."""
    temporary = Path(tempfile.mkdtemp(prefix=f"{UNPACKING}{target.name}-", dir=target.parent))
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.startswith("__MACOSX/")]
            archive.extractall(temporary, members)
        inner = temporary / target.name if _top_folder(members, target.name) else temporary
        os.rename(inner, target)
    except OSError as err:
        raise DownloadError(f"{path.name}: cannot unpack into {target.parent}: {_disk_message(err)}; "
                            f"nothing half-unpacked was left (the zip is kept at {path})") from err
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _clear_leftovers(root: Path, files: Iterable[ArchiveFile]) -> None:
    """Remove what a killed run left: half-unpacked folders, and pooch's temporary files of broken downloads."""
    for folder in root.glob(f"{UNPACKING}*"):
        shutil.rmtree(folder, ignore_errors=True)
    names = {f.name for f in files}
    for path in (root / STAGING).glob("*"):
        if path.is_file() and path.name not in names:
            path.unlink()


def _licence(target: Path) -> str | None:
    notice = target / "LICENSE.txt"
    if not notice.is_file():
        return None
    return next((line.strip() for line in notice.read_text(errors="replace").splitlines() if line.strip()), None)


def place(file: ArchiveFile, root: Path, host: str, say: Callable[[str], None], progress: bool) -> bool:
    """Fetch, check and put one file where the catalog reads it; False (and nothing fetched) if it is already there."""
    target = file.target(root)
    if target.exists():
        (root / STAGING / file.name).unlink(missing_ok=True)  # a run killed after its rename left the zip
        say(f"{file.name}: already there ({target.name}), not fetched")
        return False
    say(f"{file.name}: fetching {file.url(host)}")
    downloaded = fetch(file, root / STAGING, host, progress)
    if file.is_zip:
        verify_zip(downloaded, file)
        unpack(downloaded, target)
        downloaded.unlink()
        licence = _licence(target)
        say(f"{file.name}: unpacked into {target}/" + (f" (its LICENSE.txt: {licence})" if licence else ""))
    else:
        os.replace(downloaded, target)
        say(f"{file.name}: saved as {target}")
    return True


def download(name: str, root: Path, parts: Iterable[str] | None = None, mirror: str | None = None,
             say: Callable[[str], None] = print, progress: bool = True) -> bool:
    """Fetch `name`'s files in `parts` into `root` in the catalog's layout; whether the catalog can now read it."""
    files = select(name, parts)
    if mirror is not None and not mirror.startswith(("http://", "https://")):
        raise DownloadError(f"--mirror {mirror}: give an http:// or https:// address (files are fetched as "
                            "URL/<year>/<file>)")
    root.mkdir(parents=True, exist_ok=True)
    remote = remotes()[name]
    _clear_leftovers(root, remote.files)
    staging = root / STAGING
    try:
        fetched = sum(place(file, root, mirror or remote.host, say, progress) for file in files)
    finally:
        if staging.is_dir() and not any(staging.iterdir()):
            staging.rmdir()
    say(f"{fetched} of {len(files)} files fetched")
    if readable(name, root, say):
        return True
    if all(f.part != "training" for f in files):  # the catalog needs the training part; none was asked for
        say(f"the catalog reads {root} once its training part is there: add --parts training")
        return True
    return False


def readable(name: str, root: Path, say: Callable[[str], None] = print) -> bool:
    """Run `derm-nb data`'s layout check on `root`; print the `--data` flag when it passes, what is missing if not."""
    try:
        check_layout(name, root)
    except DataError as err:
        say(f"not readable yet: {err}")
        return False
    say(f"{root} is laid out as {name}: give it to a run with\n  --data {name}={root}")
    return True


def manual(name: str, root: Path | None = None, say: Callable[[str], None] = print) -> bool:
    """For an archive behind a login: where to get it and its layout; then the layout check of `root` if it is there."""
    source = manuals()[name]
    title = registry.get(name).title
    say(f"{title} ({name}) is not fetched by derm-nb: it needs your own credentials. Get it from\n  {source.where}")
    say(f"and lay it out as:\n{source.layout.replace('DIR', str(root) if root else 'DIR')}")
    if root is None:
        return True
    if not root.is_dir():
        say(f"{root} is not there yet; run this command again once it is, to check it")
        return False
    return readable(name, root, say)
