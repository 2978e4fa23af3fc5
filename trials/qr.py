"""QR codes of participant links, as inline SVG (segno): a clinic hands a tablet or phone
to a patient, who scans the return link instead of typing it."""

import segno


def qr_svg(url: str, *, title: str) -> str:
    """The QR code of a link as inline SVG, with its accessible title."""
    return str(
        segno.make(url, error="m").svg_inline(
            scale=4, dark="#1a1a1a", light="#ffffff", title=title, svgclass="qr-code"
        )
    )
