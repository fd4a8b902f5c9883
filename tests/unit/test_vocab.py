"""The vocabulary has one home (deskctl.vocab): what holds one entry per name (the job
registry, the report definitions, the config defaults) covers exactly its names."""

from deskctl import vocab
from deskctl.config import DEFAULTS
from deskctl.jobs import registry
from deskctl.models import Conversation
from deskctl.services.reports import kinds as reports


def test_every_job_name_has_a_registered_job_and_no_more():
    assert registry.names() == list(vocab.JOB_NAMES)
    assert list(DEFAULTS["jobs"]) == list(vocab.JOB_NAMES)


def test_every_report_kind_has_columns_definitions_and_a_default_key():
    assert tuple(reports.COLUMNS) == vocab.REPORT_KINDS
    assert tuple(reports.DEFINITIONS) == vocab.REPORT_KINDS
    assert set(reports.DEFAULT_BY.values()) <= set(vocab.REPORT_BY)


def test_model_and_config_defaults_are_names_of_the_vocabulary():
    assert Conversation.__table__.c.priority.default.arg == vocab.DEFAULT_PRIORITY == vocab.PRIORITIES[0]
    assert Conversation.__table__.c.status.default.arg == vocab.STATUSES[0]
    assert Conversation.__table__.c.sla_state.default.arg in vocab.SLA_STATES
    assert tuple(DEFAULTS["channels"]) == vocab.CHANNELS
    assert tuple(DEFAULTS["availability_states"]) == vocab.AVAILABILITY_STATES
    assert set(DEFAULTS["jobs"]["nightly-export"]["reports"]) <= set(vocab.REPORT_KINDS)
    assert set(vocab.CLOSE_STATUSES) <= set(vocab.STATUSES) and set(vocab.SUPERVISOR_ROLES) <= set(vocab.ROLES)
    assert set(vocab.AUTOMATION_TRIGGERS) <= set(vocab.EVENT_KINDS)


def test_vocab_imports_nothing():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(vocab))
    imported = {n.module if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
    assert imported <= {"__future__"}
