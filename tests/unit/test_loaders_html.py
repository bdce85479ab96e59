"""The HTML loader: text by block under its headings, scripts and navigation dropped."""

from __future__ import annotations

from ragline.documents import parse_document


def test_html_skips_scripts_and_tracks_headings() -> None:
    source = b"""<html><head><title>Benefits</title><style>p{}</style></head>
<body><nav>Home | About</nav><h1>Benefits</h1><p>Dental &amp; vision.</p>
<h2>Leave</h2><ul><li>25 days of vacation</li><li>10 sick days</li></ul>
<script>track()</script></body></html>"""
    doc = parse_document("benefits.html", source)
    assert doc.title == "Benefits"
    assert [(b.section, b.text) for b in doc.blocks] == [
        (("Benefits",), "Dental & vision."),
        (("Benefits", "Leave"), "25 days of vacation"),
        (("Benefits", "Leave"), "10 sick days"),
    ]
