"""Real documents for the tests and benchmarks/readers.py: one Chinese report as PDF, Word
.docx and a saved news page, laid out the way such files come (CJK fonts, repeated headers
and footers, lines broken inside sentences, two columns, a table), plus broken PDFs.

Made with reportlab and python-docx (the `dev` extra). PDF fonts: reportlab's built-in
STSong-Light CID font (not embedded, as office software in China often writes) or, when
Debian's fonts-wqy-microhei is installed, WenQuanYi Micro Hei embedded as a TrueType subset.
The sample article is also printed to PDF by headless Chromium, as a reader saves a page.
"""

from __future__ import annotations

import html
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

TITLE = "鄱阳湖生态环境保护工作报告"
HEADER = "江西省生态环境厅 · 2023年度报告"
# The body paragraphs, in order. The report lays them out over three pages; PAGES says where
# each one starts (paragraph 2 runs over from page 1 to page 2).
PARAGRAPHS = (
    "鄱阳湖是我国最大的淡水湖，位于江西省北部，承纳赣江、抚河、信江、饶河和修河五大河流的"
    "来水，经湖口注入长江。湖区是重要的国际湿地，每年冬季有数十万只候鸟在这里越冬。",
    "2020年起，鄱阳湖实行为期十年的全面禁捕，沿湖各县共有两万多名渔民退捕上岸。各地为退捕"
    "渔民提供技能培训和公益性岗位，帮助他们转产就业。",
    "监测数据显示，2023年鄱阳湖国控断面水质优良比例达到百分之八十五，比五年前提高了二十个"
    "百分点。湖区的总磷浓度持续下降，蓝藻水华发生的次数明显减少。沿湖城市新建和改造污水管网"
    "一千二百公里，城镇生活污水集中收集率超过百分之七十。农业面源污染治理覆盖了湖区全部"
    "十四个县。",
    "白鹤是鄱阳湖最具代表性的越冬候鸟。2023年冬季，保护区内观测到的白鹤数量超过四千只，约占"
    "全球白鹤总数的百分之九十八。",
    "为了减少人类活动对候鸟的干扰，保护区在核心区设立了十二个巡护站，配备无人机和高清摄像头，"
    "实现全天候监控。",
    "下一步，江西省将推进湖区湿地修复工程，计划到2027年修复退化湿地五万亩，并建设鄱阳湖国家公园。",
)
PAGES = (1, 1, 1, 2, 2, 3)
TABLE = (
    ("年份", "水质优良比例", "白鹤数量"),
    ("2021年", "78%", "3600只"),
    ("2023年", "85%", "4000只"),
)
TABLE_PAGE = 3
# What a reader asks about paragraph 3 (page 2), in other words than the text's.
QUESTION = "鄱阳湖冬天能看到多少只白鹤?"
ANSWER_FRAGMENT = "白鹤数量超过四千只"
ANSWER_PAGE = 2

# The two-column page: a notice set in two columns, each paragraph wrapped at 13 characters.
COLUMNS_TITLE = "关于开展湿地保护宣传月活动的通知"
COLUMNS = (
    (
        "各县区生态环境局：为提高公众的湿地保护意识，定于今年十月开展湿地保护宣传月活动。",
        "活动期间，各地要组织志愿者走进社区和学校，讲解湿地对调节气候和保护生物多样性的作用。",
    ),
    (
        "请各单位于九月底前报送活动方案，活动结束后十个工作日内报送总结材料。",
        "联系人：王明，联系电话：0791-86543210。",
    ),
)

WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
_PAGE_W, _PAGE_H = 595.0, 842.0  # A4 in points
_SIZE, _LEADING = 12.0, 19.0


def fonts() -> tuple[str, ...]:
    """The PDF fonts this machine can make: "cid" always, "ttf" with fonts-wqy-microhei."""
    return ("cid", "ttf") if WQY.is_file() else ("cid",)


def _font(kind: str) -> str:
    from reportlab.pdfbase import pdfmetrics

    if kind == "cid":
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont

        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
        return "STSong-Light"
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont("WQY", str(WQY), subfontIndex=0))
    return "WQY"


def _wrap(text: str, width: int, indent: int = 2) -> list[str]:
    """`text` cut into lines of `width` characters, the first `indent` narrower: a hard wrap
    in the middle of sentences, as a PDF has it."""
    lines, first = [], width - indent
    lines.append(text[:first])
    text = text[first:]
    while text:
        lines.append(text[:width])
        text = text[width:]
    return lines


@dataclass
class _Page:
    canvas: object
    font: str
    number: int

    def chrome(self) -> None:
        """The running header and the page number every page repeats."""
        c = self.canvas
        c.setFont(self.font, 9)
        c.drawString(72, _PAGE_H - 40, HEADER)
        c.line(72, _PAGE_H - 46, _PAGE_W - 72, _PAGE_H - 46)
        c.drawCentredString(_PAGE_W / 2, 36, f"— {self.number} —")
        c.setFont(self.font, _SIZE)


def _text_lines(page: _Page, x: float, y: float, text: str, width: int) -> float:
    """Draw one paragraph wrapped at `width` characters (first line indented); the next y."""
    c = page.canvas
    for i, line in enumerate(_wrap(text, width)):
        c.drawString(x + (2 * _SIZE if i == 0 else 0), y, line)
        y -= _LEADING
    return y - 6  # a little space between paragraphs, as word processors add


def report_pdf(
    path: Path, font: str = "cid", encrypt: str | None = None, owner: str | None = None
) -> Path:
    """The report over three pages: title, paragraphs (one crossing a page), a ruled table.

    `encrypt`: the password to open it; `owner` alone: anyone may open it, but copying and
    changing it are forbidden (what many official PDFs do)."""
    from reportlab.lib.pdfencrypt import StandardEncryption
    from reportlab.pdfgen import canvas

    encryption = None
    if encrypt or owner:
        encryption = StandardEncryption(
            encrypt or "", ownerPassword=owner or encrypt + "-owner", canCopy=0, canModify=0
        )
    c = canvas.Canvas(str(path), pagesize=(_PAGE_W, _PAGE_H), encrypt=encryption)
    c.setTitle(TITLE)
    name = _font(font)
    width = 36  # characters per line: 36 x 12 pt = 432 pt of 451
    page = _Page(c, name, 1)
    page.chrome()
    c.setFont(name, 18)
    c.drawCentredString(_PAGE_W / 2, _PAGE_H - 100, TITLE)
    c.setFont(name, _SIZE)
    y = _PAGE_H - 140
    # Page 1 ends after 8 lines of text (a figure fills the rest), so paragraph 3 runs over.
    bottom = y - 8 * _LEADING - 3 * 6 + 1
    c.rect(72, 90, _PAGE_W - 144, bottom - 110)
    for number, text in enumerate(PARAGRAPHS):
        if PAGES[number] > page.number:
            c.showPage()
            page = _Page(c, name, page.number + 1)
            page.chrome()
            y, bottom = _PAGE_H - 90, 90
        lines = _wrap(text, width)
        for i, line in enumerate(lines):
            if y < bottom:  # the bottom margin: the paragraph goes on on the next page
                c.showPage()
                page = _Page(c, name, page.number + 1)
                page.chrome()
                y, bottom = _PAGE_H - 90, 90
            c.drawString(72 + (2 * _SIZE if i == 0 else 0), y, line)
            y -= _LEADING
        y -= 6
    _table(c, y - 10)
    c.showPage()
    c.save()
    return path


def _table(c, top: float) -> None:
    """TABLE as a ruled grid of three columns."""
    widths, row_h, x0 = (110, 150, 120), 24, 72
    for r, row in enumerate(TABLE):
        y = top - r * row_h
        x = x0
        for w, cell in zip(widths, row, strict=True):
            c.rect(x, y - row_h, w, row_h)
            c.drawString(x + 8, y - 16, cell)
            x += w


def filler_report_pdf(path: Path, font: str = "cid") -> Path:
    """A longer report (the same paragraphs repeated over 12 pages), to time the readers."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=(_PAGE_W, _PAGE_H))
    name = _font(font)
    for number in range(1, 13):
        page = _Page(c, name, number)
        page.chrome()
        y = _PAGE_H - 90
        for text in PARAGRAPHS[:4]:
            y = _text_lines(page, 72, y, text, 36)
        c.showPage()
    c.save()
    return path


def columns_pdf(path: Path, font: str = "cid") -> Path:
    """A one-page notice in two columns, with the running header and page number."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=(_PAGE_W, _PAGE_H))
    name = _font(font)
    page = _Page(c, name, 1)
    page.chrome()
    c.setFont(name, 16)
    c.drawCentredString(_PAGE_W / 2, _PAGE_H - 100, COLUMNS_TITLE)
    c.setFont(name, _SIZE)
    for column, x in zip(COLUMNS, (72, 72 + 14 * _SIZE + 36), strict=True):
        y = _PAGE_H - 140
        for text in column:
            y = _text_lines(page, x, y, text, 14)
    c.showPage()
    c.save()
    return path


def _scanned_page(c) -> None:
    """A page as a scanner makes it: one grey image of text-like strokes, no text layer."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (620, 877), 250)
    draw = ImageDraw.Draw(image)
    for row in range(34):
        for col in range(0, 30 - (row % 7 == 6) * 18):
            x, y = 70 + col * 16, 80 + row * 22
            draw.rectangle((x, y, x + 12, y + 12), outline=40)  # a "character"
    c.drawInlineImage(image, 0, 0, _PAGE_W, _PAGE_H)


MIXED = "新版 Python 3.11 的 asyncio 模块新增了 TaskGroup。"


def justified_pdf(path: Path, font: str = "cid") -> Path:
    """The first paragraphs set with stretched character spacing (distributed justification,
    as WPS and Word do it), then a line of Chinese and English whose words are placed one by
    one without space glyphs (as TeX does)."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=(_PAGE_W, _PAGE_H))
    name = _font(font)
    y = _PAGE_H - 90
    for text in PARAGRAPHS[:3]:
        for i, line in enumerate(_wrap(text, 30)):
            words = c.beginText(72 + (2 * _SIZE if i == 0 else 0), y)
            words.setFont(name, _SIZE)
            words.setCharSpace(3.5)
            words.textLine(line)
            c.drawText(words)
            y -= _LEADING
        y -= 6
    x = 72 + 2 * _SIZE
    for word in MIXED.split(" "):
        words = c.beginText(x, y)
        words.setFont(name, _SIZE)
        words.setCharSpace(0)
        words.textOut(word)
        c.drawText(words)
        x += c.stringWidth(word, name, _SIZE) + 4  # a word space, but no space glyph
    c.showPage()
    c.save()
    return path


def scanned_pdf(path: Path, text_pages: int = 0) -> Path:
    """Two scanned pages (images, no text layer), after `text_pages` pages of the report's
    text: a whole scan, or a report with a scanned annex."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=(_PAGE_W, _PAGE_H))
    name = _font("cid") if text_pages else ""
    for number in range(1, text_pages + 1):
        page = _Page(c, name, number)
        page.chrome()
        _text_lines(page, 72, _PAGE_H - 90, PARAGRAPHS[number % len(PARAGRAPHS)], 36)
        c.showPage()
    for _ in range(2):
        _scanned_page(c)
        c.showPage()
    c.save()
    return path


def truncated_pdf(path: Path, font: str = "cid") -> Path:
    """The report cut off halfway, as an interrupted download leaves it."""
    whole = report_pdf(path.with_name(".whole-" + path.name), font)
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def report_docx(path: Path) -> Path:
    """The report as Word writes it: title property, a heading, paragraphs, a table, and a
    header and footer that must not be read as text."""
    import docx

    document = docx.Document()
    document.core_properties.title = TITLE
    section = document.sections[0]
    section.header.paragraphs[0].text = HEADER
    section.footer.paragraphs[0].text = "第 1 页"
    document.add_heading(TITLE, level=1)
    for text in PARAGRAPHS:
        document.add_paragraph(text)
    table = document.add_table(rows=0, cols=3)
    for row in TABLE:
        cells = table.add_row().cells
        for cell, value in zip(cells, row, strict=True):
            cell.text = value
    document.save(str(path))
    return path


NEWS_URL = "https://www.example.gov.cn/news/2023/12/poyang.html"


def report_html(path: Path | None = None) -> str:
    """The report as a saved news page: navigation, an ad, comments, related links and a
    footer around the article; the canonical URL and date in its metadata."""
    body = "\n".join(f"<p>{text}</p>" for text in PARAGRAPHS)
    rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in TABLE)
    page = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{TITLE}_江西新闻_江西网</title>
<meta property="og:title" content="{TITLE}">
<meta property="og:url" content="{NEWS_URL}">
<link rel="canonical" href="{NEWS_URL}">
<meta name="pubdate" content="2023-12-20">
<meta property="article:published_time" content="2023-12-20T09:30:00+08:00">
<script>var _hmt = _hmt || [];
(function() {{ var hm = document.createElement("script"); }})();</script>
</head><body>
<div class="top-nav"><ul><li><a href="/">首页</a></li><li><a href="/news">新闻</a></li>
<li><a href="/gov">政务</a></li><li><a href="/eco">生态</a></li>
<li><a href="/app">客户端</a></li></ul></div>
<div class="ad banner"><a href="https://ad.example.com">限时优惠！点击领取新人大礼包，下载客户端送积分</a></div>
<div class="main"><div class="article">
<h1>{TITLE}</h1>
<div class="info">2023-12-20 09:30 来源：江西省生态环境厅 作者：李华</div>
<div class="content">
{body}
<table>{rows}</table>
</div>
<div class="editor">责任编辑：张伟</div>
</div>
<div class="share">分享到：微信 微博 QQ空间</div>
<div class="related"><h3>相关阅读</h3><ul>
<li><a href="/a1">赣江新区举办招商推介会，签约项目总投资超过三百亿元</a></li>
<li><a href="/a2">南昌地铁四号线全线开通运营，市民出行更加便利</a></li></ul></div>
<div class="comments" id="comments"><h3>网友评论</h3>
<div class="comment"><span class="user">网友甲</span>
<p>鄱阳湖真美，去年冬天带孩子去看了候鸟，希望保护得越来越好！</p></div>
<div class="comment"><span class="user">网友乙</span>
<p>禁捕以后渔民的生活怎么样了？希望多报道一下。</p></div>
</div></div>
<div class="footer"><p>版权所有 © 江西网 未经授权禁止转载</p>
<p>赣ICP备12345678号 违法和不良信息举报电话：0791-12345678</p></div>
</body></html>
"""
    if path is not None:
        path.write_text(page, encoding="utf-8")
    return page


_HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _one_page_pdf(path: Path, content: bytes, font: bytes = _HELVETICA) -> Path:
    """A one-page PDF with Helvetica text whose content stream is `content`, Flate-compressed
    (written by hand: the hostile cases below are what no PDF library writes)."""
    import zlib

    data = zlib.compress(content, 9)
    objects = (
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream" % (len(data), data),
        font,
    )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))
    return path


_HELLO = b"BT /F1 12 Tf 72 720 Td (Hello world.) Tj ET\n"


def inflating_pdf(path: Path, megabytes: int) -> Path:
    """A page whose content stream is a few KB per MB it inflates to (spaces): a Flate bomb."""
    return _one_page_pdf(path, _HELLO + b" " * (megabytes * 1024 * 1024))


def operator_flood_pdf(path: Path, operators: int) -> Path:
    """One page of `operators` save/restore operators: some KB on disk, minutes to interpret."""
    return _one_page_pdf(path, _HELLO + b"q Q " * (operators // 2))


def inflating_docx(path: Path, megabytes: int) -> Path:
    """The report .docx with `megabytes` MB more text in word/document.xml (about 1 KB per MB
    on disk), its zip headers claiming the part is 20 KB: a zip bomb that lies."""
    import struct
    import zipfile

    base = report_docx(path.with_name(".base-" + path.name))
    name = "word/document.xml"
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename != name:
                dst.writestr(info.filename, data)
                continue
            head, tail = data.split(b"</w:body>")
            with dst.open(name, "w") as part:
                part.write(head + b"<w:p><w:r><w:t>")
                for _ in range(megabytes):
                    part.write(b"a" * 1024 * 1024)
                part.write(b"</w:t></w:r></w:p></w:body>" + tail)
    base.unlink()
    raw = bytearray(path.read_bytes())
    at = raw.find(name.encode())
    while at >= 0:
        if raw[at - 30 : at - 26] == b"PK\x03\x04":  # local header: uncompressed size
            struct.pack_into("<I", raw, at - 30 + 22, 20_000)
        elif raw[at - 46 : at - 42] == b"PK\x01\x02":  # central directory entry
            struct.pack_into("<I", raw, at - 46 + 24, 20_000)
        at = raw.find(name.encode(), at + 1)
    path.write_bytes(bytes(raw))
    return path


# Codes Helvetica's StandardEncoding leaves undefined: glyphs without a character, "(cid:N)"
# to pdfminer.six, as from a subset font without a ToUnicode map.
LOST_GLYPH_NUMBERS = b"Users passed 9\x8100 in 2019 and it offers 6\x8297 services."
MOSTLY_LOST = b"\x81\x82\x83\x84\x85\x86 1115\x87\x88, 900\x89\x8a\x8b\x8c \x8d\x8e 6697\x8f."


def lost_glyphs_pdf(path: Path, *lines: bytes) -> Path:
    """Lines of text far apart (a paragraph each), their bytes \\x81-\\x8f drawn as glyphs
    without a character, each as wide as a Chinese one (subset fonts give their widths)."""
    stream = b""
    for i, text in enumerate(lines):
        escaped = text.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        stream += b"BT /F1 12 Tf 72 %d Td (%s) Tj ET\n" % (720 - 60 * i, escaped)
    width = {32: 278, **{c: 556 for c in range(33, 0x80)}}  # the rest 1000, a Chinese glyph's
    widths = b" ".join(b"%d" % width.get(c, 1000) for c in range(32, 144))
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /ABCDEF+Subset /FirstChar 32 /LastChar 143 "
    font += b"/Widths [" + widths + b"] >>"
    return _one_page_pdf(path, stream, font)


SAMPLE = next((Path(__file__).resolve().parents[1] / "corpus").glob("*.txt"))
CHROMIUM = Path("/usr/bin/chromium")
# A font folder without Chinese glyphs (Debian's fonts-dejavu-core): Chromium printing with
# only these finds no font for the Chinese text, as on a server without CJK fonts.
NO_CJK_FONTS = Path("/usr/share/fonts/truetype/dejavu")


def sample_html(path: Path) -> Path:
    """The sample article as a plain web page: its title, then one <p> per paragraph."""
    title, *body = [line.strip() for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    title = title.lstrip("# ")
    paragraphs = "\n".join(f"<p>{html.escape(p)}</p>" for p in body if p)
    path.write_text(
        f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{paragraphs}\n</body></html>\n",
        encoding="utf-8",
    )
    return path


def chromium_pdf(page: Path, pdf: Path, cjk_fonts: bool = True) -> Path:
    """`page` printed to `pdf` by headless Chromium; without `cjk_fonts` it sees only the
    fonts in NO_CJK_FONTS (a fontconfig file of its own)."""
    profile = pdf.with_name(f".{pdf.stem}-profile")
    env = dict(os.environ)
    if not cjk_fonts:
        config = pdf.with_name(f".{pdf.stem}-fonts.conf")
        config.write_text(
            '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>'
            f"<dir>{NO_CJK_FONTS}</dir><cachedir>{profile}-fontcache</cachedir></fontconfig>\n",
            encoding="utf-8",
        )
        env["FONTCONFIG_FILE"] = str(config)
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--print-to-pdf={pdf}",
            page.resolve().as_uri(),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=True,
    )
    if not pdf.is_file():
        raise RuntimeError(f"Chromium wrote no {pdf}")
    return pdf
