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
