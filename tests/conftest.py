import pytest

from records.db import connect
from records.sla import load_policy


@pytest.fixture
def db(tmp_path):
    database = connect(tmp_path / "test.db", create=True)
    yield database
    database.close()


@pytest.fixture(scope="session")
def policy():
    return load_policy(None)


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path, monkeypatch):
    """`hotline simulate` saves every run under runs/ by default: in a test, under its tmp."""
    monkeypatch.setenv("HOTLINE_RUNS", str(tmp_path / "runs"))
