"""Finding and reading note files, where bad input is turned into a reason instead of a crash.

Only regular files are notes: a FIFO, socket or device named ``*.md`` would block or never end
(a FIFO's ``open`` waits for a writer forever), so it is passed over with a reason, and the open
itself cannot block. Names are checked too: one that is not UTF-8 cannot be written to the index.
"""

from __future__ import annotations

import codecs
import errno
import fnmatch
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError
from rag.text import CJK, CJK_CLASS, is_cjk

from .markup import split_lines
from .notes import NOTE_SUFFIXES


class NoteError(RagError):
    """A note that cannot be indexed; the message is the one-line reason shown to the user.

    ``keep_previous``: whether an earlier indexed version should survive. True for problems that
    say nothing about what the user wants indexed (unreadable, oversized, undecodable); false when
    the note is really gone or empty, so its old entries go too.
    """

    def __init__(self, reason: str, keep_previous: bool = True) -> None:
        super().__init__(reason)
        self.keep_previous = keep_previous


@dataclass(frozen=True)
class NoteFile:
    rel: str  # relative to the corpus, forward slashes
    path: Path


#: Characters that would let a file name fake or break a line of output: controls (newline,
#: escape sequences), invisible formatting (right-to-left overrides), line separators, surrogates.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def display_name(rel: str) -> str:
    """``rel`` safe to print on one line: unsafe characters and backslashes escaped as in Python
    literals; a byte that is not UTF-8 (kept by ``os`` as a lone surrogate) shows as ``\\xNN``."""
    return "".join(_escape(ch) if ch == "\\" or unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch
                   for ch in rel)


def _escape(ch: str) -> str:
    if "\udc80" <= ch <= "\udcff":  # os.fsdecode's surrogateescape of one undecodable byte
        return f"\\x{ord(ch) - 0xDC00:02x}"
    return ch.encode("unicode_escape").decode("ascii")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def ignored(rel: str, ignore: tuple[str, ...]) -> bool:
    """Whether a path under the corpus matches one of the user's globs (``index.ignore``): the
    path itself, or a folder it is in ("templates" and "templates/*" both leave out templates/)."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(p, g.rstrip("/")) for g in ignore for p in prefixes) \
        or any(fnmatch.fnmatchcase(rel, g) for g in ignore)


def find_notes(corpus: Path, ignore: tuple[str, ...] = ()) -> tuple[list[NoteFile], list[tuple[str, str]]]:
    """Note files under ``corpus`` (sorted) and (file, reason) for those passed over.

    Symlinks are followed only when they stay inside the corpus; hidden files and folders
    (``.obsidian``, ``.trash``, ``.git``) are not notes, and neither is what ``ignore`` names. A
    passed-over file whose name is not UTF-8 is reported with U+FFFD for each byte that is not, so
    every reported name can be written as JSON and shown through :func:`display_name` once (a
    ``\\xNN`` here would be escaped a second time).
    """
    root = corpus.resolve()
    notes: list[NoteFile] = []
    skipped: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not ignored(d if here == "." else f"{here}/{d}", ignore))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(NOTE_SUFFIXES):
                continue
            path = Path(dirpath, name)
            rel = name if here == "." else f"{here}/{name}"
            if ignored(rel, ignore):
                continue
            if not _is_utf8(rel):
                shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                skipped.append((shown, "file name is not valid UTF-8: rename the file to index it"))
            elif (reason := _not_a_note(path, root)) is not None:
                skipped.append((rel, reason))
            else:
                notes.append(NoteFile(rel, path))
    return notes, skipped


def _not_a_note(path: Path, root: Path) -> str | None:
    """Why ``path`` is not a note (a symlink out or in a loop, not a regular file), else None.

    A file that vanished since the listing is left to :func:`read_bytes`, which says so.
    """
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            try:
                target = path.resolve(strict=True)
            except RuntimeError:  # Python < 3.13 reports a symlink loop this way
                return "symlink loop: not followed"
            except FileNotFoundError:
                return "broken symlink (its target does not exist)"
            if not target.is_relative_to(root):
                return "symlink pointing outside the corpus: not followed"
            mode = os.stat(target).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop: not followed"
        return f"unreadable: {exc.strerror or exc}"
    return _irregular(mode)


def _irregular(mode: int) -> str | None:
    """The reason a file of this mode is not a note, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
             stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder"}
    return f"{kinds.get(stat.S_IFMT(mode), 'a special file')}, not a regular file: passed over"


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: Never block on open (a FIFO with no writer), never become a terminal's controlling process.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def read_bytes(note: NoteFile, max_bytes: int) -> bytes:
    """The note's bytes, or a NoteError when it is over the cap, unreadable, just vanished or
    not a regular file. The type is checked on the opened descriptor, so a file swapped for a
    FIFO after :func:`find_notes` looked at it is still refused, and never blocks."""
    try:
        fd = os.open(note.path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise NoteError("deleted while indexing", keep_previous=False) from None
    except OSError as exc:
        raise NoteError(f"unreadable: {exc.strerror or exc}") from None
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if (reason := _irregular(st.st_mode)) is not None:
            raise NoteError(reason, keep_previous=False)
        try:
            data = f.read(max_bytes + 1)  # never more than the cap, even if the file grows meanwhile
        except OSError as exc:
            raise NoteError(f"unreadable: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        size = max(len(data), st.st_size)
        raise NoteError(f"{_human(size)} is over the {_human(max_bytes)} cap (RAG_MAX_NOTE_BYTES)")
    return data


def _human(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


# ---------------------------------------------------------------------------- decoding

#: UTF-32 first: its little-endian mark begins with UTF-16's. (UTF-8's mark is handled with UTF-8.)
_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))
#: Enough text to judge a script by; the whole note is still decoded strictly.
_SAMPLE = 200_000
_CJK_RUN = re.compile(f"[{CJK_CLASS}]+")
_HANGUL_RUN = re.compile("[\uac00-\ud7a3]+")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_LATIN_SIGNS = set("\u00a0¡¢£¤¥¦§¨©ª«¬\u00ad®¯°±²³´µ¶·¸¹º»¼½¾¿×÷‘’‚“”„†‡•…‰‹›€™–—ˆ˜")


def _is_kana(ch: str) -> bool:
    return "\u3040" <= ch <= "\u30ff" or "\u31f0" <= ch <= "\u31ff"


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f"


def _is_cjk_sign(ch: str) -> bool:
    """Punctuation, arrows and symbols of CJK text, full-width forms, and the usual few from Latin-1."""
    return "\u2000" <= ch <= "\u2bff" or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef" \
        or ch in "\u00a0·×÷°±§"


def _share(text: str, pred: Callable[[str], bool]) -> float:
    """Of the non-ASCII characters of ``text``, the share for which ``pred`` holds (1 when none)."""
    high = [ch for ch in text if ord(ch) >= 128]
    return sum(map(pred, high)) / len(high) if high else 1.0


def _plausible_chinese(text: str) -> bool:
    """Ideographs and CJK punctuation, with the ideographs mostly in runs: a mis-decoded Latin-1
    note also yields ideographs, but one at a time inside Latin words (``Gr鲞e`` for ``Größe``)."""
    if _share(text, lambda ch: is_cjk(ch) or _is_cjk_sign(ch)) < 0.98:
        return False
    runs = [len(r) for r in _CJK_RUN.findall(text)]
    return sum(r for r in runs if r >= 2) >= 0.5 * sum(runs)


def _plausible_japanese(text: str) -> bool:
    """Japanese always has kana; Chinese bytes read as Shift-JIS give half-width katakana instead."""
    if _share(text, lambda ch: is_cjk(ch) or _is_cjk_sign(ch) or _is_kana(ch)) < 0.98:
        return False
    return _share(text, _is_kana) >= 0.2 and _share(text, lambda ch: "\uff61" <= ch <= "\uff9f") <= 0.05


def _plausible_korean(text: str) -> bool:
    """Hangul words a few syllables long between spaces, hardly any Hanja; Chinese bytes read
    as CP949 give about as many Hanja as Hangul, in long unbroken runs."""
    if _share(text, lambda ch: is_cjk(ch) or _is_cjk_sign(ch) or _is_hangul(ch)) < 0.98:
        return False
    runs = [len(r) for r in _HANGUL_RUN.findall(text)]
    hangul, hanja = sum(runs), len(CJK.findall(text))
    return hangul >= 0.9 * (hangul + hanja) and hangul <= 6 * len(runs)


def _plausible_latin(text: str) -> bool:
    """Accented letters here and there inside mostly ASCII words; CJK bytes read as CP1252 give
    long runs of accented letters and signs."""
    if _share(text, lambda ch: ch in _LATIN_SIGNS or (ch.isalpha() and "\u00c0" <= ch <= "\u024f")) < 1:
        return False
    letters = [ch for ch in text if ch.isalpha()]
    accented = sum(ord(ch) >= 128 for ch in letters)
    return accented <= 0.3 * len(letters) and max(map(len, _NON_ASCII_RUN.findall(text)), default=0) <= 3


#: Legacy encodings by script, Chinese first: it is what this corpus is written in, so it wins ties.
_FAMILIES = (("Chinese", ("gb18030", "big5"), _plausible_chinese),
             ("Japanese", ("cp932", "euc_jp"), _plausible_japanese),
             ("Korean", ("cp949",), _plausible_korean),
             ("Latin-1", ("cp1252",), _plausible_latin))  # a superset of ISO-8859-1's letters
#: How much less mess another script must show to beat a plausible Chinese reading of the same bytes.
_CHINESE_MARGIN = 0.05


def decode_note(data: bytes) -> str:
    """UTF-16/32 with a byte-order mark, UTF-8 (with or without), else the legacy encoding whose
    reading is plausible.

    Detection by byte statistics alone is unreliable on short notes (a few GBK lines come out as
    cp949 or big5, Japanese and Korean bytes decode cleanly as GB18030 gibberish), so each
    candidate's text must look like its script; when several do, charset-normalizer's mess ratio
    decides. A note no reading fits is skipped rather than indexed as gibberish.
    """
    if not data.strip():
        raise NoteError("empty file", keep_previous=False)
    text = _decode_wide(data)
    if text is None:
        if b"\x00" in data[:8192]:
            raise NoteError("binary file (NUL bytes), not a text note")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = _decode_legacy(data)
    elif "\x00" in text[:8192]:
        raise NoteError("binary file (NUL characters), not a text note")
    if not text.strip():
        raise NoteError("empty file", keep_previous=False)
    return text


def _decode_wide(data: bytes) -> str | None:
    """The text of a note that starts with a UTF-16 or UTF-32 byte-order mark, else None."""
    for bom, name in _BOMS:
        if not data.startswith(bom):
            continue
        try:
            text = data.decode(name)
        except UnicodeDecodeError:
            raise NoteError(f"starts with a {name} byte-order mark but is not valid {name}") from None
        sample = text[:_SAMPLE]  # random bytes after a mark decode too, mostly to unassigned characters
        if sum(ch.isprintable() or ch.isspace() for ch in sample) < 0.98 * len(sample):
            raise NoteError(f"starts with a {name} byte-order mark but does not read as text")
        return text
    return None


def _decode_legacy(data: bytes) -> str:
    from charset_normalizer import from_bytes
    from charset_normalizer.md import mess_ratio

    readings: list[tuple[float, str]] = []  # (mess, text), Chinese first
    for family, encodings, plausible in _FAMILIES:
        for encoding in encodings:
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            if plausible(text[:_SAMPLE]):
                margin = 0.0 if family == "Chinese" else _CHINESE_MARGIN
                readings.append((mess_ratio(text[:_SAMPLE], 1.0) + margin, text))
                break
    if readings:
        return min(readings, key=lambda r: r[0])[1]  # min keeps the first of equals: Chinese
    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise NoteError("not UTF-8 and no text encoding could be detected")
    # Another script (Cyrillic, Greek, ...): only when its letters follow a language's frequencies.
    if best.coherence >= 0.3 and best.chaos <= 0.1:
        return str(best)
    raise NoteError(f"not UTF-8, and no encoding reads as plausible text (closest: {best.encoding}); "
                    "save it as UTF-8")


def read_corpus(corpus: Path, max_bytes: int,
                ignore: tuple[str, ...] = ()) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Every note the indexer would read, as rel → text (lines numbered as the segmenter numbers
    them), and (rel, reason) for the notes it would skip: for tools (eval, bench) that read the
    corpus themselves, so a bad note is passed over for the same reason, not a traceback."""
    notes, skipped = find_notes(corpus, ignore)
    texts: dict[str, str] = {}
    for note in notes:
        try:
            texts[note.rel] = "\n".join(split_lines(decode_note(read_bytes(note, max_bytes))))
        except NoteError as exc:
            skipped.append((note.rel, str(exc)))
    return texts, skipped
