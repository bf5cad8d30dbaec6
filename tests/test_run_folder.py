"""matnet.train's --out folder (matnet/runfolder.py): what it refuses before anything is loaded, that a
refusal changes nothing already written, a torn metrics line, and resuming from the weights alone when
train_state.pt is lost."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from matnet.checkpoint import CheckpointError, load_checkpoint
from matnet.config import ConfigError
from matnet.metricslog import keep_through, parse_lines
from matnet.plots import read_metrics
from matnet.runfolder import check_run_folder
from matnet.train import train
from tests.helpers import micro_config


def digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) and its SHA-256: what 'nothing changed' means."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def config():
    return micro_config(max_steps=2, eval_every_steps=2).with_overrides({"data.eval_limit": 20})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    train(config(), root / "run", progress=False)
    return root / "run"


@pytest.fixture
def run(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def write_search(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "search.json").write_text("{}")
    return folder


# (what --out is, made by the lambda from the trained run's copy; text the one-line refusal holds)
REFUSED = [
    ("the run's checkpoint", lambda run: run / "checkpoint", "is a checkpoint folder"),
    ("inside the checkpoint", lambda run: run / "checkpoint" / "checkpoint", "inside the checkpoint folder"),
    ("deep inside the checkpoint", lambda run: run / "checkpoint" / "a" / "b", "inside the checkpoint folder"),
    ("a file", lambda run: run / "metrics.jsonl", "is a file"),
    ("under a file", lambda run: run / "metrics.jsonl" / "sub", "is a file, not a folder"),
    ("a search folder", lambda run: write_search(run.parent / "search"), "is a search folder"),
    ("not writable", lambda run: Path("/proc/newrun"), "cannot write in /proc"),
]


@pytest.mark.parametrize("what,make,expected", REFUSED, ids=[r[0] for r in REFUSED])
def test_an_out_that_is_not_a_run_folder_is_refused_and_nothing_changes(run, what, make, expected):
    before = digest(run.parent)
    out = make(run)
    listing = digest(run.parent)
    with pytest.raises(ConfigError) as e:
        train(config().override("model.top_latents", 4), out, progress=False)
    msg = str(e.value)
    assert expected in msg and "\n" not in msg and msg.startswith("--out"), msg
    assert digest(run.parent) == listing
    assert {k: v for k, v in before.items()} == {k: v for k, v in listing.items() if k in before}


def test_the_checkpoint_refusal_says_which_run_folder_to_give(run):
    with pytest.raises(ConfigError, match=f"give the run folder {run.resolve()}"):
        check_run_folder(run / "checkpoint", config())


def corrupt_config(run):
    (run / "checkpoint").rename(run / "elsewhere")
    (run / "metrics.jsonl").unlink()
    (run / "config.json").write_bytes(b"\xff\xfe not a config")


def foreign_config(run):
    (run / "checkpoint").rename(run / "elsewhere")
    (run / "metrics.jsonl").unlink()
    (run / "config.json").write_text('{"name": "another program\'s config"}')


def other_model_config(run):
    shutil.rmtree(run / "checkpoint")
    config().override("model.top_latents", 4).to_json(run / "config.json")


def checkpoint_is_a_file(run):
    shutil.rmtree(run / "checkpoint")
    (run / "checkpoint").write_text("a file")


def checkpoint_holds_other_things(run):
    shutil.rmtree(run / "checkpoint")
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / "my-notes.txt").write_text("not a checkpoint")


def metrics_is_a_folder(run):
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").mkdir()


FOLDER_CASES = [
    (corrupt_config, "its config.json is not a matnet run's"),
    (foreign_config, "unknown config key 'name'"),
    (other_model_config, "its config.json describes another model or data"),
    (checkpoint_is_a_file, "is not a matnet checkpoint"),
    (checkpoint_holds_other_things, "is not a matnet checkpoint"),
    (metrics_is_a_folder, "metrics.jsonl is not a file"),
]


@pytest.mark.parametrize("spoil,expected", FOLDER_CASES, ids=[c[0].__name__ for c in FOLDER_CASES])
def test_a_run_folder_holding_what_training_did_not_write_is_refused(run, spoil, expected):
    spoil(run)
    before = digest(run)
    with pytest.raises(ConfigError) as e:
        train(config(), run, progress=False)
    assert expected in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert digest(run) == before


def test_resuming_another_model_in_a_run_folder_changes_nothing(run):
    before = digest(run)
    with pytest.raises(ConfigError, match="another model"):
        train(config().override("model.top_latents", 4), run, progress=False)
    assert digest(run) == before


def test_an_empty_out_is_not_the_working_folder(tmp_path):
    with pytest.raises(ConfigError, match="--out: an empty path"):
        check_run_folder("", config())
    with pytest.raises(ConfigError, match="--out: an empty path"):
        train(config(), "", progress=False)


def test_an_empty_folder_and_an_empty_checkpoint_folder_are_fine(tmp_path):
    (tmp_path / "empty" / "checkpoint").mkdir(parents=True)
    check_run_folder(tmp_path / "empty", config())
    check_run_folder(tmp_path / "not" / "yet", config())


def lines(run: Path) -> list[dict]:
    return [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("torn", [b'{"step": 4, "epoch": 0.', b'{"step": 4}garbage', b"\xff\xfe\x00", b'[1, 2]',
                                  b'{"epoch": 1}'])
def test_a_torn_last_metrics_line_is_dropped_on_resume(run, torn, capsys):
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(torn)  # the disk filled up (or the power went) while the line was written
    assert [m["step"] for m in read_metrics(run / "metrics.jsonl")] == [2]   # readers skip it
    train(config().override("train.max_steps", 4), run, progress=False)
    assert [m["step"] for m in lines(run)] == [2, 4]
    assert "dropped" in capsys.readouterr().err


def test_metric_lines_after_the_checkpoint_are_redone_and_a_glued_line_is_split(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 2}\n{"step": 4}\n{"step": 6}')  # complete, but no final newline
    assert keep_through(path, 4) == 1
    assert path.read_text() == '{"step": 2}\n{"step": 4}\n'
    path.write_text('{"step": 2}')
    keep_through(path, 2)
    assert path.read_text().endswith("\n")                    # the next append starts a line of its own
    assert parse_lines(b'{"step": 1}\n\n{"step": true}\n{"step": 3}\n') == ([{"step": 1}, {"step": 3}], 1)


def test_starting_afresh_in_a_folder_without_a_checkpoint_drops_its_stale_metrics(run):
    """Killed after a metrics line was written but before its checkpoint was: the rerun starts from
    step 0, so the line is redone rather than doubled."""
    shutil.rmtree(run / "checkpoint")
    train(config(), run, progress=False)
    assert [m["step"] for m in lines(run)] == [2]


@pytest.mark.parametrize("spoil", [
    lambda f: f.write_bytes(f.read_bytes()[:100]),              # truncated
    lambda f: f.write_bytes(b"not a torch file"),
    lambda f: torch.save({"optimizer": [], "step": "two"}, f),  # readable, not a training state
    lambda f: torch.save([1, 2, 3], f),
    lambda f: f.unlink(),                                       # lost
], ids=["truncated", "garbage", "wrong-keys", "a-list", "missing"])
def test_an_unreadable_train_state_gives_advice_that_works(run, spoil, request):
    spoil_id = request.node.callspec.id
    spoil(run / "checkpoint" / "train_state.pt")
    before = digest(run)
    with pytest.raises(CheckpointError) as e:
        train(config().override("train.max_steps", 4), run, progress=False)
    assert "--fresh-optimizer" in str(e.value) and "\n" not in str(e.value)
    assert digest(run) == before
    if spoil_id not in ("truncated", "missing"):
        return
    # The advice: go on from the weights and the step, with a new optimizer state.
    m = train(config().override("train.max_steps", 4), run, progress=False, fresh_optimizer=True)
    assert m["step"] == 4 and [x["step"] for x in lines(run)] == [2, 4]
    _, _, meta = load_checkpoint(run / "checkpoint")
    assert meta["step"] == 4 and (run / "checkpoint" / "train_state.pt").is_file()  # whole again
    train(config().override("train.max_steps", 6), run, progress=False)            # and resumes as usual


def test_an_optimizer_state_of_another_shape_is_one_line(run):
    state = torch.load(run / "checkpoint" / "train_state.pt", weights_only=True)
    first = next(iter(state["optimizer"]["state"].values()))
    first["exp_avg"] = torch.zeros(3)
    torch.save(state, run / "checkpoint" / "train_state.pt")
    with pytest.raises(CheckpointError, match="does not fit this model's parameters.*--fresh-optimizer"):
        train(config().override("train.max_steps", 4), run, progress=False)
