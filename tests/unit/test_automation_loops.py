"""RFC 3834 §2: which messages an automatic reply must never answer (services/automations)."""

from __future__ import annotations

import pytest

from deskctl.services.automations import loop_reason

OWN = {"support@desk.example", "alice@desk.example"}


@pytest.mark.parametrize("headers, sender, reason", [
    ({}, "lea@example.fr", None),
    ({"auto-submitted": "no"}, "lea@example.fr", None),
    ({"auto-submitted": " No ; comment"}, "lea@example.fr", None),
    ({"auto-submitted": "auto-replied"}, "lea@example.fr", "Auto-Submitted: auto-replied"),
    ({"auto-submitted": "Auto-Generated; owner-email=x@y"}, "lea@example.fr", "Auto-Submitted: auto-generated"),
    ({"precedence": "Bulk"}, "lea@example.fr", "Precedence: bulk"),
    ({"precedence": "junk"}, "lea@example.fr", "Precedence: junk"),
    ({"precedence": "list"}, "lea@example.fr", "Precedence: list"),
    ({"precedence": "first-class"}, "lea@example.fr", None),
    ({"list-id": "<users.example.org>"}, "lea@example.fr", "List-Id"),
    ({"list-id": "  "}, "lea@example.fr", None),
    ({}, "Alice@Desk.example", "from the desk's own address"),
    ({}, None, None),
])
def test_loop_reason(headers, sender, reason):
    assert loop_reason(headers, sender, OWN) == reason
