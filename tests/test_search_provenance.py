"""Nothing the project reads from a search folder can run code. Tune's resume unpickles its own
state files, so `search.run --resume` first checks they carry this machine's signature
(search/provenance.py); the export reads only the project's own plain files."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from search.store.folder import SearchFolder, SearchInfo
from search.store.provenance import SIGNATURES, UntrustedStateError, sign, verify

from tests.helpers import ROOT  # noqa: E402


class Payload:
    """A pickle that, once loaded, writes a file: what a hostile search folder would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def tune_state(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tuner.pkl").write_bytes(pickle.dumps({"fine": 1}))
    (folder / "searcher-state-2026.pkl").write_bytes(pickle.dumps({"study": None}))
    (folder / "experiment_state-2026.json").write_text(json.dumps({"trial_data": []}))
    (folder / "trials.json").write_text(json.dumps({"trials": {}}))  # the project's own: not Tune's


def test_signed_state_verifies_and_any_change_is_refused(tmp_path):
    tune_state(tmp_path / "s")
    folder = SearchFolder(str(tmp_path / "s"))
    with pytest.raises(UntrustedStateError, match="carries no signature"):
        verify(folder)
    sign(folder)
    assert set(json.loads((tmp_path / "s" / SIGNATURES).read_text())) == {
        "tuner.pkl", "searcher-state-2026.pkl", "experiment_state-2026.json"}
    verify(folder)
    (tmp_path / "s" / "trials.json").write_text("{}")  # not Tune's: not part of the signature
    verify(folder)
    for name, change in [("tuner.pkl", pickle.dumps({"fine": 2})), ("callback-states-2027.pkl", b"new")]:
        original = (tmp_path / "s" / name).read_bytes() if (tmp_path / "s" / name).exists() else None
        (tmp_path / "s" / name).write_bytes(change)
        with pytest.raises(UntrustedStateError, match=name) as e:
            verify(folder)
        assert "--trust-state" in str(e.value) and "\n" not in str(e.value)
        if original is None:
            (tmp_path / "s" / name).unlink()
        else:
            (tmp_path / "s" / name).write_bytes(original)
    verify(folder)
    (tmp_path / "s" / SIGNATURES).write_text("[]")
    with pytest.raises(UntrustedStateError, match="damaged"):
        verify(folder)


def test_signatures_a_read_only_folder_refuses_go_beside_the_key_and_a_resume_trusts_them(tmp_path, monkeypatch):
    """Tune saved, then the folder's disk went read-only before the signatures of that save were
    written (a fault test hit it, 2026-12-07): they go beside the key, and verify accepts them."""
    import errno

    from search.store import provenance, storage
    tune_state(tmp_path / "s")
    folder = SearchFolder(str(tmp_path / "s"))
    sign(folder)
    (tmp_path / "s" / "experiment_state-2026.json").write_text(json.dumps({"trial_data": [1]}))  # Tune's last save

    def read_only(path, text):
        raise OSError(errno.EROFS, "Read-only file system", path)
    with monkeypatch.context() as m:
        m.setattr(storage, "write_text", read_only)
        sign(folder)
    assert provenance.aside_file(folder).is_file() and provenance.aside_file(folder).parent.parent == \
        provenance.key_file().parent
    verify(folder)  # the folder's own signatures are of the save before; the ones aside are of this one
    (tmp_path / "s" / "tuner.pkl").write_bytes(pickle.dumps({"fine": 2}))
    with pytest.raises(UntrustedStateError, match="tuner.pkl"):
        verify(folder)
    with monkeypatch.context() as m:  # any other failure to write is not set aside
        m.setattr(storage, "write_text", lambda path, text: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
        with pytest.raises(OSError):
            sign(SearchFolder(str(tmp_path / "s")))


def test_a_signature_made_with_another_key_is_refused(tmp_path, monkeypatch):
    tune_state(tmp_path / "s")
    folder = SearchFolder(str(tmp_path / "s"))
    monkeypatch.setenv("MATNET_STATE_KEY_FILE", str(tmp_path / "other-key"))
    sign(folder)
    assert (tmp_path / "other-key").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("MATNET_STATE_KEY_FILE", str(tmp_path / "my-key"))
    with pytest.raises(UntrustedStateError, match="not the file a search run with this machine's key"):
        verify(folder)


def test_resume_refuses_a_planted_pickle_before_anything_runs(tmp_path):
    space = ROOT / "spaces" / "quickstart.yaml"
    folder = SearchFolder(str(tmp_path / "results" / "quickstart"))
    info = SearchInfo(name="quickstart", space_file=str(space), cwd=str(tmp_path), storage=str(tmp_path / "results"),
                      experiment_dir=folder.path, num_samples=8, max_concurrent=2, strategy="random+asha",
                      optuna_storage=str(tmp_path / "results" / "quickstart" / "optuna.journal"),
                      optuna_study="quickstart",
                      tracking={"mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db",
                                           "experiment": "quickstart", "parent_run_id": None}})
    folder.write_info(info, space.read_text())
    tune_state(Path(folder.path))
    marker = tmp_path / "pwned"
    (Path(folder.path) / "tuner.pkl").write_bytes(pickle.dumps(Payload(marker)))
    r = subprocess.run([sys.executable, "-m", "search.run", str(space), "--resume", "--storage",
                        str(tmp_path / "results")], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "carries no signature" in lines[0] and "--trust-state" in lines[0], r.stderr
    assert not marker.exists()


def test_state_on_an_object_store_is_signed_as_tune_saves_it_not_only_at_the_end(tmp_path):
    """A URI folder (file:// here; s3:// and gs:// go through the same pyarrow file systems) is looked at
    every few seconds and re-signed when a state file changed, so a driver killed mid-search leaves
    state that a resume trusts."""
    from search.tune.callbacks import StateSigner
    tune_state(tmp_path / "s")
    folder = SearchFolder(f"file://{tmp_path / 's'}")
    signer = StateSigner(folder)
    signer.on_step_end(0, [])
    verify(folder)
    (tmp_path / "s" / "experiment_state-2026.json").write_text(json.dumps({"trial_data": [1]}))
    signer.on_step_end(1, [])  # within the interval: not looked at yet
    with pytest.raises(UntrustedStateError):
        verify(folder)
    signer._looked_at = 0.0    # the interval has passed
    signer.on_step_end(2, [])
    verify(folder)


def test_a_local_folder_is_signed_at_every_save_without_listing_its_trials_at_every_step(tmp_path, monkeypatch):
    """Between listings the signer looks only at the state files it knows (a listing holds one entry
    per trial: at 1,000 trials it made signing grow with the search); a change to one signs at once,
    and a file Tune adds is found at the next listing."""
    from search.tune import callbacks
    tune_state(tmp_path / "s")
    for i in range(50):
        (tmp_path / "s" / f"trial_{i}").mkdir()
    folder = SearchFolder(str(tmp_path / "s"))
    listings = []
    monkeypatch.setattr(callbacks, "stamps", lambda f: listings.append(1) or __import__(
        "search.store.provenance", fromlist=["stamps"]).stamps(f))
    signer = callbacks.StateSigner(folder)
    signer.on_step_end(0, [])
    verify(folder)
    first = len(listings)
    for step in range(1, 100):
        signer.on_step_end(step, [])
    assert len(listings) == first  # 99 steps, no listing
    (tmp_path / "s" / "experiment_state-2026.json").write_text(json.dumps({"trial_data": [1, 2]}))
    signer.on_step_end(100, [])
    verify(folder)                  # the change was signed at the next step
    (tmp_path / "s" / "callback-states-2026.pkl").write_bytes(pickle.dumps({}))
    signer.on_step_end(101, [])
    with pytest.raises(UntrustedStateError):
        verify(folder)              # a new file alone waits for the next listing ...
    signer._listed_at -= signer.RELIST_EVERY_S
    signer.on_step_end(102, [])
    verify(folder)                  # ... which signs it


def test_signing_again_reads_only_the_state_files_that_changed(tmp_path, monkeypatch):
    """Tune rewrites its snapshot at every save and leaves tuner.pkl alone: a re-sign reads only what
    changed, and the signatures file still covers every state file."""
    from search.store import provenance
    tune_state(tmp_path / "s")
    folder = SearchFolder(str(tmp_path / "s"))
    read = []
    digest = provenance._digest
    monkeypatch.setattr(provenance, "_digest", lambda key, path: read.append(Path(path).name) or digest(key, path))
    signed = sign(folder)
    assert sorted(read) == ["experiment_state-2026.json", "searcher-state-2026.pkl", "tuner.pkl"]
    read.clear()
    assert sign(folder, signed) == signed and read == []
    (tmp_path / "s" / "experiment_state-2026.json").write_text(json.dumps({"trial_data": [1, 2, 3]}))
    signed = sign(folder, signed)
    assert read == ["experiment_state-2026.json"]
    verify(folder)
    assert set(json.loads((tmp_path / "s" / SIGNATURES).read_text())) == set(signed)


def test_a_state_file_rewritten_while_it_is_signed_is_signed_again_at_the_next_step(tmp_path, monkeypatch):
    """Tune's syncer copies its snapshot into the folder on a thread of its own, so a file can change
    while the signer reads it. The stamp kept is the one from before the read: the signer sees the
    file changed and signs it again, instead of keeping a signature of the older content."""
    from search.store import provenance
    from search.tune.callbacks import StateSigner
    tune_state(tmp_path / "s")
    folder = SearchFolder(str(tmp_path / "s"))
    state = tmp_path / "s" / "experiment_state-2026.json"
    digest = provenance._digest
    rewrites = []

    def read_then_rewritten(key, path):
        out = digest(key, path)
        if Path(path).name == state.name and not rewrites:  # Tune's copy lands just after the signer read the file
            rewrites.append(1)
            state.write_text(json.dumps({"trial_data": ["a", "longer", "one"]}))
        return out
    monkeypatch.setattr(provenance, "_digest", read_then_rewritten)
    signer = StateSigner(folder)
    signer.on_step_end(0, [])
    with pytest.raises(UntrustedStateError):
        verify(folder)          # what was signed is not what lies there now ...
    signer.on_step_end(1, [])
    verify(folder)              # ... and the next step signed it again


class StagedTrial:
    """What the signer reads of a Tune trial: its storage context's staging folder."""

    def __init__(self, staging: Path):
        self.storage = type("Storage", (), {"experiment_driver_staging_path": str(staging)})()


def test_state_is_signed_as_tune_stages_it_so_a_driver_killed_during_the_copy_leaves_a_trusted_folder(tmp_path):
    """Tune writes its snapshot into a staging folder, asks the callbacks for their state, then copies
    the staging folder into the search folder on a thread. The signer signs the staged copy then, so
    the folder verifies whether the copy has landed or not (the driver killed outright between the two
    failed a CI run, 2026-12-08); a file keeps its last VERSIONS_KEPT signatures, no more."""
    from search.store.provenance import VERSIONS_KEPT
    from search.tune.callbacks import StateSigner
    staged, searched = tmp_path / "staging", tmp_path / "s"
    tune_state(searched)
    staged.mkdir()
    state = "experiment_state-2026.json"
    folder = SearchFolder(str(searched))
    signer = StateSigner(folder)
    signer.on_step_end(0, [StagedTrial(staged)])  # the first save: signed in the folder, after the fact
    verify(folder)
    versions = []
    for v in range(VERSIONS_KEPT + 1):
        versions.append(json.dumps({"trial_data": list(range(v + 1))}))
        (staged / state).write_text(versions[-1])  # Tune's save ...
        signer.get_state()                        # ... asks the callbacks ...
        verify(folder)                            # (killed here: the folder holds the save before)
        (searched / state).write_text(versions[-1])  # ... and its thread copies it
        signer.on_step_end(v + 1, [StagedTrial(staged)])
        verify(folder)
    (searched / state).write_text(versions[-VERSIONS_KEPT])
    verify(folder)  # still among the kept versions
    (searched / state).write_text(versions[0])
    with pytest.raises(UntrustedStateError, match=state):
        verify(folder)  # older than that
    (searched / state).write_text(versions[-1][:-3])
    with pytest.raises(UntrustedStateError, match=state):
        verify(folder)  # a copy cut short is not a version Tune saved
    assert json.loads((searched / SIGNATURES).read_text())["tuner.pkl"]  # signed once, kept


def test_tune_state_that_names_code_this_version_lacks_is_one_line_on_resume(tmp_path, monkeypatch):
    """A search interrupted under another version of the project: Tune's pickles name a class that is
    gone (as MlflowCallback went when tracking became pluggable). --resume says so and what to do."""
    from ray import tune

    from search.space import load_space
    from search.store.errors import RunError
    from search.tune.tuner import restored_tuner

    saved = pickle.dumps(Gone())  # Tune's state names this class ...
    monkeypatch.delattr(sys.modules[Gone.__module__], "Gone")  # ... which this version no longer has

    def restore(*args, **kwargs):
        return pickle.loads(saved)  # what Tune's restore meets
    monkeypatch.setattr(tune.Tuner, "restore", restore)
    with pytest.raises(RunError, match=r"written by another version.*search.export .*--name NEW_NAME"):
        restored_tuner(SearchFolder(str(tmp_path)), load_space(ROOT / "spaces" / "quickstart.yaml"))


class Gone:
    pass
