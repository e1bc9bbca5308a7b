"""Opens a statement PDF with PDFium (Chrome's PDF engine, from PyPI), renders every page to
PNG next to it, and checks the text a person would read: python check_pdf.py FILE.pdf"""

import sys
from pathlib import Path

import pypdfium2 as pdfium

path = Path(sys.argv[1])
document = pdfium.PdfDocument(str(path))
pages = len(document)
assert pages >= 2, f"{pages} page(s): 76 instalments do not fit on one"
text = ""
for index in range(pages):
    page = document[index]
    width, height = page.get_size()
    assert (round(width), round(height)) == (595, 842), (width, height)
    text += page.get_textpage().get_text_range() + "\n"
    image = page.render(scale=1.5).to_pil()
    image.save(path.with_name(f"{path.stem}-page{index + 1}.png"))
for needle in [
    "Account statement",
    "Holdings",
    "Transactions",
    "Parag Parikh Flexi Cap Fund",
    "Rs 1,000.00",
    "SIP instalment",
    f"Page 1 of {pages}",
]:
    assert needle in text, f"{needle!r} not in the PDF's text:\n{text[:2000]}"
print(f"{path.name}: {pages} pages, rendered to PNG, text as expected")
