"""matnet/locate.py: a checkpoint argument is a folder, or a URI handed to the resolver an installed
package registers for its scheme (entry points `matnet.checkpoint_resolvers`); matnet itself knows
no tracking library. The MLflow resolvers themselves are exercised on a real search
(tests/test_search_ray.py: models:/NAME@champion and runs:/RUN_ID/model)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from matnet.checkpoint import CheckpointError
from matnet.locate import RESOLVER_GROUP, checkpoint_folder

from tests.helpers import ROOT  # noqa: E402


@pytest.fixture
def fake_resolver(tmp_path, monkeypatch):
    """A package on sys.path that registers the scheme `fake` (and `broken`, which raises)."""
    (tmp_path / "fake_resolver.py").write_text(
        "def resolve(uri):\n"
        "    return '/resolved/' + uri.split(':/', 1)[1]\n"
        "def broken(uri):\n"
        "    raise ConnectionError('the server did not answer\\nmore detail')\n")
    dist = tmp_path / "fake_resolver-1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-resolver\nVersion: 1\n")
    (dist / "entry_points.txt").write_text(f"[{RESOLVER_GROUP}]\nfake = fake_resolver:resolve\n"
                                           f"broken = fake_resolver:broken\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_folder_is_itself(tmp_path):
    for argument in (str(tmp_path), "runs/tiny/checkpoint", "C:\\runs\\best", "./models:x"):
        assert checkpoint_folder(argument) == argument


def test_a_uri_goes_to_the_resolver_registered_for_its_scheme(fake_resolver):
    assert checkpoint_folder("fake:/a/b") == "/resolved/a/b"


def test_a_scheme_nobody_resolves_and_a_resolver_that_fails_are_one_line(fake_resolver):
    with pytest.raises(CheckpointError) as e:
        checkpoint_folder("nosuch:/x")
    assert "no installed package opens nosuch: URIs" in str(e.value) and "fake:" in str(e.value)
    with pytest.raises(CheckpointError) as e:
        checkpoint_folder("broken:/x")
    assert str(e.value) == "broken:/x: could not be fetched (the server did not answer)"


def test_the_commands_take_a_uri_and_say_in_one_line_when_they_cannot_open_it(tmp_path):
    for command in ("matnet.evaluate", "matnet.sample", "matnet.impute"):
        r = subprocess.run([sys.executable, "-m", command, "nosuch:/x"], capture_output=True, text=True,
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (command, r.stderr)
        assert r.stderr.startswith("error: nosuch:/x: no installed package opens nosuch: URIs"), r.stderr
