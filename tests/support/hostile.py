"""Hostile files of issue 18, at any scale: small ones for the unit tests (over a lowered
budget), full-size ones for ``bench/hostile_files.py``.

Each is small on disk and costly to parse: a PDF page whose content stream inflates to
``inflated`` bytes, an Office package declaring ``unpacked`` bytes of XML, a workbook
with cells in columns A and XFD, a CSV of one line, HTML tables nested ``depth`` deep.
"""

from __future__ import annotations

import io
import zipfile
import zlib

_DRAWING = b"10 10 m 20 20 l S\n"
_STEP = 16 * 1024 * 1024


def _deflate_repeated(unit: bytes, total: int, prefix: bytes = b"") -> bytes:
    """zlib data of ``prefix`` then ``unit`` repeated to ``total`` bytes, built a step at
    a time (a GiB is never held)."""
    compressor = zlib.compressobj(9)
    out = [compressor.compress(prefix)]
    block = unit * (_STEP // len(unit))
    written = len(prefix)
    while written < total:
        piece = block[: total - written]
        out.append(compressor.compress(piece))
        written += len(piece)
    out.append(compressor.flush())
    return b"".join(out)


def flate_bomb_pdf(inflated: int) -> bytes:
    """A one-page PDF whose content stream (a line of text, then drawing operators)
    inflates to ``inflated`` bytes."""
    text = b"BT /F1 12 Tf 72 720 Td (Harbour fees are listed below.) Tj ET\n"
    stream = _deflate_repeated(_DRAWING, inflated, text)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_DOCX_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_DOCX_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)


def _zip_member(package: zipfile.ZipFile, name: str, head: bytes, unit: bytes, total: int,
                tail: bytes) -> None:  # fmt: skip
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with package.open(info, "w", force_zip64=True) as member:
        member.write(head)
        units = (total - len(head) - len(tail)) // len(unit)
        per_block = _STEP // len(unit)
        block = unit * per_block
        while units > 0:
            count = min(units, per_block)
            member.write(block if count == per_block else unit * count)
            units -= count
        member.write(tail)


def docx_declaring(unpacked: int) -> bytes:
    """A Word file whose document.xml unpacks to about ``unpacked`` bytes of paragraphs."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as package:
        package.writestr("[Content_Types].xml", _DOCX_TYPES)
        package.writestr("_rels/.rels", _DOCX_RELS)
        _zip_member(
            package,
            "word/document.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><w:document {_W}><w:body>'.encode(),
            b"<w:p><w:r><w:t>Kayak tariff is 40 euros per day.</w:t></w:r></w:p>",
            unpacked,
            b"</w:body></w:document>",
        )
    return buffer.getvalue()


_XLSX_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
)
_XLSX_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_SHEET_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_REL_NS = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'


def xlsx_wide(rows: int, *, last_column: str = "XFD", dimension: bool = True) -> bytes:
    """A workbook of one sheet whose ``rows`` rows have cells in A and ``last_column``;
    ``dimension``: the sheet records its true extent (else none, as some writers do)."""
    body = "".join(
        f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>row {n}</t></is></c>'
        f'<c r="{last_column}{n}" t="inlineStr"><is><t>far</t></is></c></row>'
        for n in range(1, rows + 1)
    )
    extent = f'<dimension ref="A1:{last_column}{rows}"/>' if dimension else ""
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8"?><worksheet {_SHEET_NS}>{extent}'
        f"<sheetData>{body}</sheetData></worksheet>"
    )
    workbook = (
        f'<?xml version="1.0" encoding="UTF-8"?><workbook {_SHEET_NS} {_REL_NS}><sheets>'
        '<sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    workbook_rels = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as package:
        package.writestr("[Content_Types].xml", _XLSX_TYPES)
        package.writestr("_rels/.rels", _XLSX_RELS)
        package.writestr("xl/workbook.xml", workbook)
        package.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        package.writestr("xl/worksheets/sheet1.xml", sheet)
    return buffer.getvalue()


def csv_one_line(size: int) -> bytes:
    """A CSV of one line of ``size`` bytes: short fields, no line break."""
    unit = b"kayak,40,"
    return (unit * (size // len(unit) + 1))[:size]


def html_table_bomb(size: int) -> bytes:
    """About ``size`` bytes of HTML: tables nested in table cells, never closed."""
    unit = b"<table><tr><td>x"
    return b"<html><body>" + unit * (size // len(unit)) + b"</body></html>"


def json_with(text: str) -> bytes:
    """A JSON document whose text field holds ``text`` (escaped as JSON writes it)."""
    import json

    return json.dumps({"title": "Tariffs", "text": text}).encode()


def json_big_number(digits: int) -> bytes:
    """A JSON document holding an integer of ``digits`` digits."""
    return b'{"title": "Tariffs", "count": ' + b"7" * digits + b"}"
