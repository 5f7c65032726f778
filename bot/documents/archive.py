"""Opening an Office file's zip without letting it inflate past a bound.

DOCX, PPTX and XLSX are zip archives, and a few kilobytes of zip can inflate to
gigabytes. The central directory's declared sizes are checked first (cheap, and refuses
honest bombs at once); then every member is inflated in chunks with the real byte count
enforced, because the directory can lie. The verified members are re-packed into a
fresh in-memory zip that the format libraries open, so they never inflate anything we
have not counted. Macro projects (`vbaProject.bin`) and external links stay in the
archive, because the libraries resolve every relationship and would fail on a missing
part, but nothing reads or runs them: python-docx and python-pptx only parse XML, and
openpyxl is opened with `keep_vba=False, keep_links=False`.
"""

from __future__ import annotations

import io
import zipfile

from bot.documents.limits import DocumentLimits
from bot.errors import DocumentCorrupt, DocumentTooComplex

CHUNK = 1024 * 1024


def verified_zip(data: bytes, name: str, limits: DocumentLimits) -> io.BytesIO:
    """The archive re-packed from members whose inflated size was counted, or a refusal."""
    try:
        source = zipfile.ZipFile(io.BytesIO(data))
        members = source.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentCorrupt(name) from exc
    if len(members) > limits.max_zip_members:
        raise DocumentTooComplex(name, f"it holds {len(members):,} parts, an archive bomb?")
    declared = sum(m.file_size for m in members)
    if declared > limits.max_unzipped_bytes:
        raise _bomb(name, limits)
    out = io.BytesIO()
    inflated = 0
    with source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for member in members:
            if member.is_dir():
                continue
            parts: list[bytes] = []
            size = 0
            try:
                with source.open(member) as stream:
                    while chunk := stream.read(CHUNK):
                        size += len(chunk)
                        inflated += len(chunk)
                        if size > member.file_size or inflated > limits.max_unzipped_bytes:
                            raise _bomb(name, limits)
                        parts.append(chunk)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
                raise DocumentCorrupt(name) from exc
            target.writestr(member.filename, b"".join(parts))
    out.seek(0)
    return out


def _bomb(name: str, limits: DocumentLimits) -> DocumentTooComplex:
    cap = limits.max_unzipped_bytes // (1024 * 1024)
    return DocumentTooComplex(
        name, f"it would inflate to more than {cap} MB (an archive bomb?), so I refused it"
    )
