"""Secrets never shown: URLs reduced to scheme, host and port, and known secrets scrubbed.

RPC, price-source, database and broker URLs routinely carry API keys — in the path (of any
length or shape), the query or the user-info — and price sources carry them in headers.

- ``redact_url`` shows a URL as ``scheme://host[:port]``, plus ``/…#<fingerprint>`` when it has
  anything else (path, query, user-info, fragment). The fingerprint is a short hash of the
  whole URL: stable across runs, different for two endpoints on one host, too short to confirm
  a guessed key.
- ``scrub`` cleans free text (exception messages, fault details, log lines) before it is
  shown: every URL in it is redacted, then every registered secret is replaced by ``***``.
  ``register_url``/``register_secret`` add the secrets of the loaded config (the config loader
  does it), so text that quotes a key without its URL — a user name in a database error, a
  key echoed in a server's error page — is clean too.

Pure string handling: no I/O, no dependency beyond the standard library.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

FINGERPRINT_CHARS = 4  # hex digits of the URL hash shown after "#"
MIN_SECRET_CHARS = 6  # shorter fragments are not scrubbed from free text (they match words)
KEYLIKE_CHARS = 16  # a fragment this long counts as key-like whatever its characters
MAX_SECRETS = 4096  # registered fragments kept (bounded: tests load many configs)
MASK = "***"
ELLIPSIS = "…"

# URLs that name a local file and carry no credentials; shown as they are.
PLAIN_SCHEMES = frozenset({"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite", "file"})

_FINGERPRINT = re.compile(rf"^[0-9a-f]{{{FINGERPRINT_CHARS}}}$")
# A URL inside free text: a scheme, "://" and everything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_TRAILING_PUNCTUATION = ".,;:!?)]}"
# Plain words (letters and inner hyphens) are identifiers such as "mainnet" or "ETH-USD".
_WORD = re.compile(r"^[A-Za-z]+(?:-[A-Za-z]+)*$")


def fingerprint(text: str) -> str:
    """A short, stable hash of ``text`` (hex), for telling hidden values apart."""
    return _digest(text)[:FINGERPRINT_CHARS]


def _digest(text: str) -> str:
    """The whole hash a fingerprint is a prefix of."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def distinct_fingerprints(texts: Iterable[str]) -> dict[str, str]:
    """A fingerprint per distinct text that tells it apart from all the others given.

    It is ``fingerprint(text)`` unless another text's hash shares those digits (about one pair
    in 65,536): then it is the shortest longer prefix of its hash that no other text's hash
    starts with, so ids built from fingerprints never merge two texts and stay as they were
    for every text that does not collide.
    """
    hashes = {t: _digest(t) for t in texts}
    out = {}
    for text, digest in hashes.items():
        shared = max(
            (_common_prefix(digest, other) for t, other in hashes.items() if t != text),
            default=0,
        )
        out[text] = digest[: max(FINGERPRINT_CHARS, shared + 1)]
    return out


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def url_authority(url: str) -> str | None:
    """``host[:port]`` of ``url`` (IPv6 in brackets, host lower-case); ``None`` if unparsable."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if not host:
        return None
    try:
        port = parts.port
    except ValueError:  # out of range or not a number: the host alone
        port = None
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def redact_url(url: str) -> str:
    """``url`` as it may be shown: ``scheme://host[:port]``, plus ``/…#fp`` when it has more.

    User-info, path, query and fragment are never shown; the fingerprint (a short hash of the
    whole URL) tells two URLs on the same host apart. A URL already in this form is returned
    unchanged, so redacting twice is harmless. File URLs (SQLite) are shown as they are.
    """
    text = url.strip()
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme in PLAIN_SCHEMES:
        return text
    if _is_shown(text):
        return text
    mark = f"{ELLIPSIS}#{fingerprint(text)}"
    authority = url_authority(text)
    if not scheme or authority is None:
        return mark
    try:
        parts = urlsplit(text)
    except ValueError:  # url_authority parsed it already; kept for type checkers' sake
        return mark
    try:
        _ = parts.port
        bad_port = False
    except ValueError:  # out of range or not a number: url_authority showed the host alone
        bad_port = True
    rest = (
        "@" in parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or bad_port
    )
    shown = f"{scheme}://{authority}"
    return f"{shown}/{mark}" if rest else shown


def _is_shown(text: str) -> bool:
    if text.startswith(f"{ELLIPSIS}#") and _FINGERPRINT.match(text[2:]):
        return True  # what an unparsable URL is shown as
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return (
        parts.path == f"/{ELLIPSIS}"
        and not parts.query
        and "@" not in parts.netloc
        and bool(_FINGERPRINT.match(parts.fragment))
    )


def is_keylike(fragment: str) -> bool:
    """Whether a URL part looks like a key rather than a name: long enough, and either not a
    plain word (it has a digit or other punctuation) or long (``KEYLIKE_CHARS``)."""
    if len(fragment) < MIN_SECRET_CHARS:
        return False
    return len(fragment) >= KEYLIKE_CHARS or not _WORD.match(fragment)


def url_secrets(url: str) -> tuple[list[str], list[str]]:
    """The parts of ``url`` to scrub from free text: ``(key candidates, credentials)``.

    Credentials (user-info, password) are secret whatever they look like. Key candidates —
    path segments, query values, the user name, and the path and query as a whole when any of
    those is key-like — are scrubbed only when ``is_keylike``: a plain word such as
    ``mainnet`` in a path is a name that appears in ordinary text too. The URL itself needs no
    entry: ``scrub`` redacts every URL before it looks for fragments.
    """
    text = url.strip()
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme in PLAIN_SCHEMES:
        return [], []
    try:
        parts = urlsplit(text)
    except ValueError:
        return [text], []
    keys: list[str] = []
    credentials: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        user, _, password = userinfo.partition(":")
        credentials += [userinfo, password]
        keys.append(user)
    pieces = [*parts.path.split("/"), *(v for _, v in parse_qsl(parts.query, True))]
    if any(is_keylike(piece) for piece in pieces):
        keys += [parts.path, *pieces]
        if parts.query:
            keys += [parts.query, f"{parts.path}?{parts.query}"]
    return keys, credentials


class SecretRegistry:
    """Known secret fragments, replaced by ``***`` in any text passed to ``scrub``.

    Key-like fragments are replaced wherever they occur; credentials that are plain words
    (a password ``hunter``) only as whole words, so ordinary words containing them survive.
    """

    def __init__(self) -> None:
        self._anywhere: set[str] = set()
        self._words: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()  # log records may be formatted on other threads

    def __len__(self) -> int:
        return len(self._anywhere) + len(self._words)

    def register_url(self, url: str) -> None:
        """Register the secret parts of ``url`` (see ``url_secrets``)."""
        keys, credentials = url_secrets(url)
        for key in keys:
            if is_keylike(key):
                self._add(key, whole_word=False)
        for credential in credentials:
            self.register_secret(credential)

    def register_secret(self, value: str) -> None:
        """Register a value that is secret whatever it looks like (a password, a header value,
        a token). ``Bearer <token>`` registers the token too."""
        value = value.strip()
        scheme, _, token = value.partition(" ")
        if token.strip() and scheme.isalpha():
            self.register_secret(token)
        if len(value) >= MIN_SECRET_CHARS:
            self._add(value, whole_word=not is_keylike(value))

    def _add(self, fragment: str, *, whole_word: bool) -> None:
        with self._lock:
            if len(self) >= MAX_SECRETS:
                return
            encoded = quote(fragment, safe="")
            # As written, decoded, and percent-encoded (some clients encode "~" too).
            forms = {fragment, unquote(fragment), encoded, encoded.replace("~", "%7E")}
            for form in forms:
                if len(form) >= MIN_SECRET_CHARS:
                    (self._words if whole_word else self._anywhere).add(form)
            self._pattern = None

    def clear(self) -> None:
        """Forget every registered secret."""
        with self._lock:
            self._anywhere.clear()
            self._words.clear()
            self._pattern = None

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret replaced by ``***``."""
        pattern = self._pattern
        if pattern is None:
            pattern = self._compile()
        if pattern is None:
            return text
        return pattern.sub(MASK, text)

    def _compile(self) -> re.Pattern[str] | None:
        with self._lock:
            # Longest first: a secret containing another is replaced whole.
            anywhere = sorted(self._anywhere, key=len, reverse=True)
            words = sorted(self._words, key=len, reverse=True)
            alternatives = [re.escape(s) for s in anywhere]
            alternatives += [rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])" for s in words]
            if not alternatives:
                return None
            self._pattern = re.compile("|".join(alternatives))
            return self._pattern


SECRETS = SecretRegistry()
"""The process-wide registry; the config loader registers every secret of the config."""


def register_url(url: str) -> None:
    """Add the secret parts of ``url`` to the process-wide registry."""
    SECRETS.register_url(url)


def register_secret(value: str) -> None:
    """Add a secret value (password, header value, token) to the process-wide registry."""
    SECRETS.register_secret(value)


def redact_urls_in(text: str) -> str:
    """``text`` with every URL in it replaced by its ``redact_url`` form."""
    return _URL_IN_TEXT.sub(_redact_match, text)


def _redact_match(match: re.Match[str]) -> str:
    found = match.group(0)
    url = found.rstrip(_TRAILING_PUNCTUATION)
    return redact_url(url) + found[len(url) :]


def scrub(text: str) -> str:
    """``text`` as it may be shown: URLs redacted, then every registered secret masked.

    Use it on anything built from outside text (exception messages, server answers) before
    it reaches a log, the API, MQTT or a command's output.
    """
    return SECRETS.scrub(redact_urls_in(text))


def scrub_optional(text: str | None) -> str | None:
    """``scrub`` for an optional text (``None`` stays ``None``)."""
    return None if text is None else scrub(text)
