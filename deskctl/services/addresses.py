"""The one rule for an email address the desk stores or sends to (SPEC §13).

An address is exactly one RFC 5322 addr-spec (`local@domain`): no display name, no
list, no comment, no control character. Every option that takes an address (`user
--email`, `contact --email`, contact REFs, `reply --cc/--bcc`, `close --transcript-to`)
goes through `check_address`, and the outbox checks stored recipients with
`is_address` before sending. The parsing is the standard library's; this module only
refuses what that parser reads as anything more or other than one plain addr-spec.
"""

from __future__ import annotations

from email.headerregistry import Address

from deskctl.errors import UsageError

# RFC 5321 §4.5.3.1.3: a forward-path holds at most 256 octets, brackets included.
MAX_LENGTH = 254


def _problem(value: str) -> str | None:
    """Why `value` is not one plain addr-spec, or None when it is."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "contains a control character (CR, LF, tab, ...)"
    if not value:
        return "is empty"
    if len(value) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    try:
        parsed = Address(addr_spec=value)
    except Exception:  # noqa: BLE001 - the stdlib parser raises ValueError, IndexError, HeaderParseError...
        return "is not one address of the form name@domain (no list, no display name)"
    # The parser skips comments and folding white space (`a@x (b@y)`): what it read must
    # be the whole text, so nothing the user wrote is silently dropped.
    if parsed.addr_spec != value or not parsed.username or not parsed.domain:
        return "is not one address of the form name@domain (no list, no display name, no comment)"
    return None


def check_address(value: str | None, what: str, *, option: str | None = None) -> str:
    """`value` as one addr-spec (surrounding spaces removed); else a usage error naming
    `what` the address is for (and the service parameter `option` it came in)."""
    text = (value or "").strip(" ")
    problem = _problem(text)
    if problem:
        raise UsageError(f"invalid email address for {what}: {value!r} {problem}", option=option)
    return text


def is_address(value: str | None) -> bool:
    """True when `value` passes `check_address` unchanged (for values already stored)."""
    return value is not None and _problem(value) is None


__all__ = ["check_address", "is_address", "MAX_LENGTH"]
