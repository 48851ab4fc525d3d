import pytest

from synthetic import make_clip


@pytest.fixture
def clip():
    return make_clip()
