"""Markdown to safe HTML, with Labbook blocks cut out for the report renderer.

``to_html(text)`` runs python-markdown (tables, fenced code with Pygments
highlighting, table of contents, footnotes, task lists), then sanitizes the
result with nh3's allowlist, on every render path. Labbook blocks (fenced
``chart``/``runs``/``compare``), inline ``run:<id>`` references and ``@name``
mentions never pass through Markdown as HTML: they leave placeholder text
carrying a random nonce, and :func:`fill` swaps trusted HTML in *after*
sanitizing, so a body cannot forge a placeholder. A reference or mention that
Markdown put inside a link, or into an attribute (``[x](https://h/?q=run:5)``),
is given back as its plain text.

Ids the body creates (headings, footnotes) are prefixed with ``r-`` (links to
them too), so user content can never clobber the page's own element ids.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import markdown
import nh3
from django.utils.html import format_html
from markdown.blockprocessors import BlockProcessor
from markdown.extensions import Extension
from markdown.inlinepatterns import InlineProcessor, LinkInlineProcessor
from markdown.preprocessors import Preprocessor

from reports_app.blocks import KINDS
from reports_app.render_slots import in_render_slot

logger = logging.getLogger(__name__)

ID_PREFIX = "r-"
FENCE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<kind>" + "|".join(KINDS) + r")[ \t]*\n"
    r"(?P<body>.*?)"
    r"^(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
RUN_REF = r"(?<![\w/:])run:(\d{1,18})\b"
# "@bob", "@bob.smith", "@bob@example.com"; not the "@" inside an address like a@b.c.
# The one pattern of a mention: the comments' emails (reports_app.comments) and rendering.
MENTION = r"(?<![\w@.+-])@([\w.+-]+(?:@[\w-]+(?:\.[\w-]+)+)?)"
MENTION_RE = re.compile(MENTION)
# A tag of nh3's output: its serializer double-quotes every attribute value and escapes
# '"' inside one, and escapes '<' in text, so this finds exactly the tags.
TAG = re.compile(r'<(/?)([A-Za-z][A-Za-z0-9]*)(?:[^>"]|"[^"]*")*>')
BRACKETS = re.compile(r"[\[\]]")
SCAN_LINK_CHARS = 2048  # a link target that does not close within this is no link
SCANNED_LINKS = 1000  # link targets longer than SCAN_CHARS read per document; then: no link
# JSON may spell half a UTF-16 pair ("\ud800"); nh3 (Rust) cannot take one: it shows as U+FFFD.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
SCAN_CHARS = 64  # a link text this short is read directly; a longer one through the index
# The render budget of one text (see _WorkBudget, _html_depth, _markdown); the figures are
# from tests/benchmarks/report_render.py --markdown on 200,000-character bodies.
MAX_BLOCK_WORK = 50_000_000  # characters shown to block processors; about 1 s
MAX_HTML_DEPTH = 1_000  # nested block elements handed to nh3
MAX_HIGHLIGHTED = 500  # fenced code blocks highlighted with Pygments; the rest plain
CODE_FENCE = re.compile(r"^[ \t]*(?:`{3,}|~{3,})", re.MULTILINE)
# Start and end tags of elements the HTML parser checks the whole open-element stack for.
SCOPED_TAG = re.compile(
    r"<(/?)(address|article|aside|blockquote|center|details|dialog|dir|div|dl|fieldset"
    r"|figcaption|figure|footer|form|h[1-6]|header|hgroup|main|menu|nav|ol|pre|section"
    r"|summary|table|ul)\b[^>]*>",
    re.IGNORECASE,
)

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "input", "kbd", "label", "li",
    "mark", "ol", "p", "pre", "s", "span", "strong", "sub", "summary", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
RESERVED_CLASSES = frozenset({"mention"})  # added by the renderer alone: no body forges a badge
ATTRIBUTES = {
    "*": {"id", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "input": {"type", "checked", "disabled"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
    "div": {"class"},
    "span": {"class"},
    "code": {"class"},
    "pre": {"class"},
    "li": {"class"},
    "label": {"class"},
    "sup": {"class"},
}


@dataclass
class Source:
    """A body cut into Markdown with placeholders plus what the placeholders stand for."""

    nonce: str
    blocks: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, body, line)
    run_refs: list[int] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)  # names, in order, repeats included

    def block_token(self, index: int) -> str:
        return f"LBBLOCK{self.nonce}X{index}"

    def run_token(self, run_id: int) -> str:
        return f"LBRUN{self.nonce}X{run_id}"

    def mention_token(self, index: int) -> str:
        return f"LBMENTION{self.nonce}X{index}"


def mention_name(match: re.Match[str]) -> str:
    """The name a ``MENTION_RE`` match mentions: "@bob." at the end of a sentence is bob."""
    return match[1].rstrip(".")


class _Blocks(Preprocessor):
    """Replaces each Labbook fence by its placeholder paragraph (before fenced_code runs)."""

    def __init__(self, md: markdown.Markdown, source: Source) -> None:
        super().__init__(md)
        self.source = source

    def run(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)

        def cut(match: re.Match[str]) -> str:
            line = text.count("\n", 0, match.start()) + 1
            self.source.blocks.append((match["kind"], match["body"], line))
            return f"\n\n{self.source.block_token(len(self.source.blocks) - 1)}\n\n"

        return FENCE.sub(cut, text).split("\n")


class _RunRefs(InlineProcessor):
    def __init__(self, pattern: str, source: Source) -> None:
        super().__init__(pattern)
        self.source = source

    # InlineProcessor's signature, which differs from Pattern's: its stub ignores it the same way.
    def handleMatch(self, m: re.Match[str], data: str) -> tuple[str, int, int]:  # type: ignore[override]
        run_id = int(m.group(1))
        self.source.run_refs.append(run_id)
        return self.source.run_token(run_id), m.start(0), m.end(0)


class _Mentions(InlineProcessor):
    """``@name`` outside code (code spans and blocks are taken before inline patterns)."""

    def __init__(self, pattern: str, source: Source) -> None:
        super().__init__(pattern)
        self.source = source

    def handleMatch(  # type: ignore[override]
        self, m: re.Match[str], data: str
    ) -> tuple[str | None, int | None, int | None]:
        name = mention_name(m)
        if not name:
            return None, None, None
        self.source.mentions.append(name)
        token = self.source.mention_token(len(self.source.mentions) - 1)
        return token, m.start(0), m.start(1) + len(name)


@functools.lru_cache(maxsize=8)
def _closing_brackets(data: str) -> dict[int, int]:
    """Each ``[`` of ``data`` (by position) and the ``]`` closing it, in one pass."""
    opened: list[int] = []
    closing: dict[int, int] = {}
    for match in BRACKETS.finditer(data):
        if match[0] == "[":
            opened.append(match.start())
        elif opened:
            closing[opened.pop()] = match.start()
    return closing


@functools.lru_cache(maxsize=8)
def _last_paren(data: str) -> int:
    return data.rfind(")")


def _link_text_end(data: str, index: int) -> int | None:
    """Where the ``[`` just before ``index`` closes, or None: what python-markdown scans for."""
    window = min(len(data), index + SCAN_CHARS)
    if data.find("]", index, window) != -1:  # it may close nearby: count as python-markdown does
        depth = 1
        for pos in range(index, window):
            depth += (data[pos] == "[") - (data[pos] == "]")
            if depth == 0:
                return pos
    return _closing_brackets(data).get(index - 1)


def _indexed(processor: LinkInlineProcessor) -> None:
    """A link processor without python-markdown's quadratic cost on ``[[[[…`` (its #798).

    ``getText`` scans from every ``[`` to its ``]``, to the end of the paragraph when
    there is none, and ``getLink`` from every ``](`` to its ``)``: 20,000 ``[`` took
    minutes. Short link texts are still scanned (a successful link changes the
    paragraph, so an index would be rebuilt per link); the rest are looked up in an
    index built once per paragraph text, and a ``(`` with no ``)`` after it fails at once.
    ``getLink`` reads a target within SCAN_CHARS first (what it finds there, it would
    find reading on), then within SCAN_LINK_CHARS, at most SCANNED_LINKS times a
    document: no input costs more than that.
    """
    get_text, get_link = processor.getText, processor.getLink
    slow_reads = [SCANNED_LINKS]

    def indexed_get_text(data: str, index: int) -> tuple[str, int, bool]:
        if data[index - 1 : index] != "[":
            return get_text(data, index)
        end = _link_text_end(data, index)
        return ("", len(data), False) if end is None else (data[index:end], end + 1, True)

    def indexed_get_link(data: str, index: int) -> tuple[str, str | None, int, bool]:
        if _last_paren(data) < index:
            return "", None, len(data), False
        href, title, end, handled = get_link(data[index : index + SCAN_CHARS], 0)
        if not handled:  # a long target, or none: read further, a bounded number of times
            if slow_reads[0] <= 0:
                return "", None, len(data), False
            slow_reads[0] -= 1
            href, title, end, handled = get_link(data[index : index + SCAN_LINK_CHARS], 0)
        return href, title, index + end, handled

    # Patched on this one processor, not its class: mypy refuses any assignment to a method.
    processor.getText, processor.getLink = indexed_get_text, indexed_get_link  # type: ignore[method-assign]


class TooComplex(Exception):
    """Markdown past the render budget: shown as plain text, like Markdown that fails."""


class _WorkBudget(BlockProcessor):
    """Counts the characters the block parser tests, and stops it past ``MAX_BLOCK_WORK``.

    Tested first, it sees every step. python-markdown hands the rest of a chunk back
    after each line it takes (a heading, a rule) and tests that rest again: 50,000
    headings without blank lines between them cost billions of steps, minutes of
    CPU. Real documents cost one to a few hundred times their length.
    """

    def __init__(self, parser: markdown.blockparser.BlockParser) -> None:
        super().__init__(parser)
        self.work = 0

    def test(self, parent: object, block: str) -> bool:
        self.work += len(block)
        if self.work > MAX_BLOCK_WORK:
            raise TooComplex(f"more than {MAX_BLOCK_WORK:,} characters of block parsing")
        return False

    def run(self, parent: object, blocks: list[str]) -> bool:
        return False


def _html_depth(html: str) -> int:
    """How deep the block elements of ``html`` nest, counted from their tags.

    nh3's HTML parser walks the stack of open elements for each of these tags:
    50,000 unclosed ``<ul>`` took 8 s. Tags it closes implicitly (``p``, ``li``)
    are not counted, so this is what the parser will hold, or more.
    """
    depth = deepest = 0
    for match in SCOPED_TAG.finditer(html):
        depth = max(0, depth - 1) if match[1] else depth + 1
        deepest = max(deepest, depth)
    return deepest


class LabbookExtension(Extension):
    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        md.preprocessors.register(_Blocks(md, self.source), "labbook_blocks", 40)
        md.parser.blockprocessors.register(_WorkBudget(md.parser), "labbook_budget", 1000)
        md.inlinePatterns.register(_RunRefs(RUN_REF, self.source), "labbook_run_refs", 185)
        md.inlinePatterns.register(_Mentions(MENTION, self.source), "labbook_mentions", 184)
        for processor in md.inlinePatterns:  # links, images and references, each a new instance
            if isinstance(processor, LinkInlineProcessor):
                _indexed(processor)


def _markdown(source: Source, *, highlight: bool = True) -> markdown.Markdown:
    """The converter; ``highlight=False`` leaves code unhighlighted (Pygments builds a
    stylesheet per block: 10,000 blocks took 2.7 s)."""
    return markdown.Markdown(
        extensions=[
            LabbookExtension(source),
            "tables",
            "fenced_code",
            "codehilite",
            "footnotes",
            "sane_lists",
            "toc",
            "pymdownx.tasklist",
        ],
        extension_configs={
            "codehilite": {
                "css_class": "highlight",
                "guess_lang": False,
                "use_pygments": highlight,
            },
            "tables": {"use_align_attribute": True},  # no style attributes at all
            "toc": {"permalink": False},
        },
        output_format="html",
    )


def _attribute(tag: str, name: str, value: str) -> str | None:
    if name == "class":
        kept = " ".join(word for word in value.split() if word not in RESERVED_CLASSES)
        return kept or None
    if name == "id":
        return ID_PREFIX + value
    if name == "href" and value.startswith("#"):
        return "#" + ID_PREFIX + value[1:]
    if tag == "input" and name == "type":
        return "checkbox" if value == "checkbox" else None
    return value


def sanitize(html: str) -> str:
    """The allowlist every render path goes through: no script, handlers, style or bad URLs."""
    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_attribute,
        strip_comments=True,
    )


def block_count(text: str) -> int:
    """How many chart, runs and compare blocks ``text`` holds."""
    return sum(1 for _ in FENCE.finditer(text.replace("\r\n", "\n").replace("\r", "\n")))


@in_render_slot
def convert(text: str) -> tuple[str, Source]:
    """Sanitized HTML of ``text`` with placeholders, and the blocks and run refs cut out.

    Never raises: Markdown that python-markdown cannot render (deep nesting
    ends in RecursionError), or not within the render budget (``TooComplex``),
    is shown as the text it is, escaped, and logged, so one comment or report
    can't break, or hold, the page or API that shows it.
    """
    source = Source(nonce=secrets.token_hex(8))
    highlight = len(CODE_FENCE.findall(text)) <= 2 * MAX_HIGHLIGHTED
    try:
        html = _markdown(source, highlight=highlight).convert(LONE_SURROGATE.sub("\ufffd", text))
        if _html_depth(html) > MAX_HTML_DEPTH:
            raise TooComplex(f"block elements nested more than {MAX_HTML_DEPTH} deep")
    except Exception as error:  # TooComplex, RecursionError, or a bug of a Markdown extension
        logger.warning(
            "Markdown of %d characters could not be rendered (%s: %s); shown as plain text",
            len(text),
            type(error).__name__,
            error,
        )
        return as_plain_text(text), Source(nonce=source.nonce)
    return sanitize(html), source


def as_plain_text(text: str) -> str:
    """``text`` escaped, as the page shows Markdown it could not render."""
    return format_html('<pre class="markdown-unrendered">{}</pre>', text)


def fill(
    html: str,
    source: Source,
    *,
    block: Callable[[int], str],
    run_link: Callable[[int], str],
    mention: Callable[[str], str] | None = None,
) -> str:
    """Swap each placeholder for trusted HTML (``block(i)``, ``run_link(id)``, ``mention(name)``).

    Without ``mention``, a mention stays the text it was.
    """
    html = _fill_inline(html, source, run_link=run_link, mention=mention or _plain_mention)
    html = re.sub(rf"<p>LBBLOCK{source.nonce}X(\d+)</p>", lambda m: block(int(m.group(1))), html)
    return re.sub(rf"LBBLOCK{source.nonce}X(\d+)", lambda m: block(int(m.group(1))), html)


def _plain_mention(name: str) -> str:
    return format_html("@{}", name)


def _fill_inline(
    html: str, source: Source, *, run_link: Callable[[int], str], mention: Callable[[str], str]
) -> str:
    """Run references and mentions: trusted HTML in text, their plain text in a link or a tag."""
    if not source.run_refs and not source.mentions:
        return html
    token = re.compile(rf"LB(RUN|MENTION){source.nonce}X(\d+)")
    # python-markdown puts a backslash before a placeholder inside raw inline HTML
    in_tag = re.compile(rf"\\?LB(RUN|MENTION){source.nonce}X(\d+)")

    def swap(match: re.Match[str], *, plain: bool) -> str:
        if match[1] == "RUN":
            return f"run:{match[2]}" if plain else run_link(int(match[2]))
        name = source.mentions[int(match[2])]
        return _plain_mention(name) if plain else mention(name)

    parts, links, start = [], 0, 0
    for tag in TAG.finditer(html):
        parts.append(token.sub(functools.partial(swap, plain=links > 0), html[start : tag.start()]))
        parts.append(in_tag.sub(functools.partial(swap, plain=True), tag[0]))
        if tag[2].lower() == "a":
            links = max(0, links - 1) if tag[1] else links + 1
        start = tag.end()
    parts.append(token.sub(functools.partial(swap, plain=links > 0), html[start:]))
    return "".join(parts)


def to_html(text: str) -> str:
    """Plain sanitized Markdown (run notes, comment emails): references and mentions stay text."""
    html, source = convert(text)
    return fill(html, source, block=code_blocks(source), run_link=lambda run_id: f"run:{run_id}")


def code_blocks(source: Source) -> Callable[[int], str]:
    """``fill``'s ``block`` where Labbook blocks show as the code they are (comments)."""

    def as_code(index: int) -> str:
        kind, body, _line = source.blocks[index]
        return format_html('<pre><code class="language-{}">{}</code></pre>', kind, body)

    return as_code
