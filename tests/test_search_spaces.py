"""Search spaces: YAML -> validated model -> Optuna define-by-run, without Ray."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from matnet.config import Config
from search.space import Space, SpaceError, check_resume_compatible, load_space

from tests.helpers import ROOT  # noqa: E402
SHIPPED = sorted((ROOT / "spaces").glob("*.yaml"))

BASE = """\
experiment:
  name: t
  num_samples: 4
base: tiny
data: {dataset: mnist, train_limit: 500, eval_limit: 100}
fixed:
  train: {max_steps: 40, eval_every_steps: 10, batch_size: 50}
"""


def space_from(text: str, tmp_path: Path, name: str = "s.yaml") -> Space:
    f = tmp_path / name
    f.write_text(textwrap.dedent(text))
    return load_space(f)


def error_of(text: str, tmp_path: Path) -> str:
    """The one line a space file gets before Ray starts: from reading it, or from its strategy's check."""
    from search.tune import strategies
    with pytest.raises(SpaceError) as e:
        strategies.for_space(space_from(text, tmp_path))
    msg = str(e.value)
    assert "\n" not in msg, msg
    assert msg.startswith(str(tmp_path / "s.yaml") + ":"), msg
    return msg


def test_shipped_spaces_load_and_sample():
    names = {f.stem for f in SHIPPED}
    assert {"quickstart", "mnist", "omniglot", "cifar10", "mnist-quadrants"} <= names
    from matnet.build import build_model, is_conditional
    from matnet.data import dataset_info
    for f in SHIPPED:
        space = load_space(f)
        for params in space.sample(2):
            cfg = space.trial_config(params)
            assert isinstance(cfg, Config)
            model = build_model(cfg, dataset_info(cfg.data.dataset))  # the layout and the task can be built
            assert is_conditional(model) == (f.stem == "mnist-quadrants")


def test_quickstart_is_small_enough_for_a_laptop():
    s = load_space(ROOT / "spaces" / "quickstart.yaml")
    e = s.settings.experiment
    assert e.num_samples >= 8 and s.settings.scheduler.type == "asha" and e.resources.gpu == 0
    assert s.base_config().data.dataset == "mnist" and s.base_config().train.device == "cpu"
    assert s.settings.export.iwae_k < 2500
    for f in ("mnist", "omniglot", "cifar10"):
        paper = load_space(ROOT / "spaces" / f"{f}.yaml")
        assert paper.settings.export.iwae_k == 2500 and paper.settings.experiment.resources.gpu > 0


def test_scalars_fixed_and_data_reach_the_config(tmp_path):
    s = space_from(BASE + """\
search:
  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  train.kl_warmup_steps: {type: int, low: 0, high: 100, step: 50}
  model.top_latents: {type: categorical, choices: [8, 16]}
""", tmp_path)
    params = s.sample(1, seed=3)[0]
    assert set(params) == {"train.lr", "train.kl_warmup_steps", "model.top_latents"}
    cfg = s.trial_config(params)
    assert cfg.train.lr == params["train.lr"] and 1e-4 <= cfg.train.lr <= 1e-2
    assert cfg.train.kl_warmup_steps in (0, 50, 100)
    assert cfg.model.top_latents in (8, 16)
    assert cfg.data.train_limit == 500 and cfg.train.max_steps == 40 and cfg.train.batch_size == 50
    # Trials run in their own directories: a data folder that is here is named absolutely; the default
    # one, absent here, stays the default (each data set then falls back to its packaged copy).
    assert Path(cfg.data.data_dir).is_absolute() or (cfg.data.data_dir == "data" and not Path("data").is_dir())
    assert s.reports_per_trial() == 4


def test_conditions_and_otherwise(tmp_path):
    s = space_from(BASE + """\
search:
  use_warmup: {type: categorical, choices: [true, false]}
  train.kl_warmup_steps: {type: int, low: 10, high: 100, when: {use_warmup: true}, otherwise: 0}
  train.lr: {type: float, low: 1.0e-4, high: 1.0e-3, when: {train.kl_warmup_steps: {gt: 50}}}
""", tmp_path)
    seen = set()
    for params in s.sample(30, seed=0):
        cfg = s.trial_config(params)
        if params["use_warmup"]:
            assert "train.kl_warmup_steps" in params and cfg.train.kl_warmup_steps == params["train.kl_warmup_steps"]
            assert ("train.lr" in params) == (params["train.kl_warmup_steps"] > 50)
        else:
            assert "train.kl_warmup_steps" not in params and "train.lr" not in params
            assert cfg.train.kl_warmup_steps == 0  # otherwise
            assert cfg.train.lr == 1e-3  # the base preset's value
        assert "use_warmup" not in s.overrides(params)  # a helper sets no config key
        seen.add((params["use_warmup"], "train.lr" in params))
    assert seen == {(True, True), (True, False), (False, False)}


def test_repeated_block_searches_the_number_of_meta_modules(tmp_path):
    s = space_from(BASE + """\
search:
  model.meta_modules:
    type: repeat
    count: {type: int, low: 1, high: 2}
    scales: [7, 14]
    each:
      modules: {type: int, low: 1, high: 3}
      width: {type: categorical, choices: [16, 32]}
      latent_channels: 4
""", tmp_path)
    counts = set()
    for params in s.sample(20, seed=1):
        n = params["model.meta_modules.count"]
        counts.add(n)
        cfg = s.trial_config(params)
        mms = cfg.model.meta_modules
        assert [m.scale for m in mms] == [7, 14][-n:]  # coarse to fine, ending at the finest scale
        for m in mms:
            tag = f"{m.scale}x{m.scale}"
            assert m.modules == params[f"model.meta_modules.{tag}.modules"]
            assert m.width == params[f"model.meta_modules.{tag}.width"]
            assert m.latent_channels == 4
        if n == 1:
            assert not any(k.startswith("model.meta_modules.7x7") for k in params)
    assert counts == {1, 2}


def test_define_by_run_drives_a_real_optuna_study(tmp_path):
    s = space_from(BASE + """\
search:
  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  model.meta_modules:
    type: repeat
    count: {type: categorical, choices: [1, 2]}
    scales: [7, 14]
    each:
      modules: {type: int, low: 1, high: 2}
      width: 16
      latent_channels: {type: int, low: 2, high: 8, step: 2}
sampler: {type: tpe, seed: 0, n_startup_trials: 3}
points_to_evaluate:
  - {train.lr: 1.0e-3, model.meta_modules.count: 1}
""", tmp_path)
    from search.tune import strategies
    study = optuna.create_study(sampler=strategies.get("tpe+asha").sampler(s))
    for pt in s.points():
        study.enqueue_trial(pt)
    study.optimize(lambda t: (s.suggest(t), s.trial_config(t.params).train.lr)[1], n_trials=8)
    assert study.trials[0].params["train.lr"] == 1e-3 and study.trials[0].params["model.meta_modules.count"] == 1
    dist = study.trials[-1].distributions["train.lr"]
    assert dist.log and dist.low == 1e-4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_list_valued_choices_are_encoded_for_optuna(tmp_path):
    s = space_from(BASE + """\
search:
  train.betas: {type: categorical, choices: [[0.9, 0.99], [0.8, 0.999]]}
""", tmp_path)
    p = s.sample(1, seed=0)[0]
    assert isinstance(p["train.betas"], str)  # Optuna keeps scalars only
    assert list(s.trial_config(p).train.betas) in ([0.9, 0.99], [0.8, 0.999])


# ---------------------------------------------------------------------------------------------
# Validation: one line naming the file, the key and the fix

SEARCH_LR = "search:\n  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n"


@pytest.mark.parametrize("text, where, fix", [
    # unknown keys, at every level
    (BASE + "colour: red\n" + SEARCH_LR, "unknown key 'colour'", "known keys here: experiment"),
    (BASE.replace("num_samples: 4", "num_samples: 4\n  num_sample: 3") + SEARCH_LR,
     "experiment.num_sample", "known keys here"),
    (BASE + "search:\n  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, lg: true}\n",
     "search.train.lr.lg", "known keys here"),
    (BASE + "search:\n  train.lrate: {type: float, low: 1.0e-4, high: 1.0e-2}\n",
     "search.train.lrate", "known keys: train."),
    (BASE.replace("max_steps: 40", "max_step: 40") + SEARCH_LR, "fixed.train.max_step", "known keys"),
    (BASE.replace("train_limit: 500", "train_lim: 500") + SEARCH_LR, "data.train_lim", "known"),
    (BASE + SEARCH_LR + "scheduler: {type: asha, grace: 2}\n", "scheduler.grace", "known keys here"),
    # bad bounds
    (BASE + "search:\n  train.lr: {type: float, low: 1.0e-2, high: 1.0e-4}\n", "search.train.lr", "swap them"),
    (BASE + "search:\n  train.lr: {type: float, low: 0, high: 1.0e-2, log: true}\n", "search.train.lr",
     "raise low or drop log"),
    (BASE + "search:\n  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true, step: 1.0e-4}\n",
     "search.train.lr", "drop one of them"),
    (BASE + "search:\n  train.kl_warmup_steps: {type: int, low: 0, high: 10, step: 0}\n",
     "search.train.kl_warmup_steps", "fix step"),
    (BASE + "search:\n  train.kl_warmup_steps: {type: int, low: 0.5, high: 10}\n",
     "search.train.kl_warmup_steps.low", "fix the value"),
    (BASE + "search:\n  model.top_latents: {type: float, low: 8, high: 16.5}\n",
     "search.model.top_latents", "change the bounds or choices"),
    (BASE + "search:\n  train.max_steps: {type: int, low: 10, high: 40}\n", "search.train.max_steps",
     "remove it there"),
    (BASE + "search:\n  model.top_latents: {type: categorical, choices: []}\n",
     "search.model.top_latents.choices", "list at least one"),
    (BASE + "search:\n  model.top_latents: {type: categorical, choices: [8, 8]}\n",
     "search.model.top_latents.choices", "remove the duplicate"),
    (BASE + "search:\n  train.lr: {low: 1.0e-4, high: 1.0e-2}\n", "search.train.lr", "needs a type"),
    (BASE + "search:\n  train.lr: {type: flot, low: 1.0e-4, high: 1.0e-2}\n", "search.train.lr", "not known"),
    # references to parameters not defined earlier
    (BASE + "search:\n  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, when: {use_big: true}}\n"
            "  use_big: {type: categorical, choices: [true, false]}\n",
     "search.train.lr.when.use_big", "define it earlier"),
    (BASE + "search:\n  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, when: {nothing: 1}}\n",
     "search.train.lr.when.nothing", "define it earlier"),
    # repeated blocks
    (BASE + "search:\n  model.meta_modules:\n    type: repeat\n    count: {type: int, low: 1, high: 3}\n"
            "    scales: [7, 14]\n    each: {modules: 1, width: 16, latent_channels: 4}\n",
     "search.model.meta_modules.count", "list more scales"),
    (BASE + "search:\n  model.meta_modules:\n    type: repeat\n    count: 1\n    scales: [7, 14]\n"
            "    each: {modules: 1, width: 16}\n", "search.model.meta_modules.each", "missing latent_channels"),
    (BASE + "search:\n  model.meta_modules:\n    type: repeat\n    count: 1\n    scales: [5]\n"
            "    each: {modules: 1, width: 16, latent_channels: 4}\n", "search.model.meta_modules.scales",
     "must divide the image size"),
    (BASE + "search:\n  model.top_latents:\n    type: repeat\n    count: 1\n    each: {modules: 1}\n",
     "search.model.top_latents", "cannot be repeated"),
    # the rest
    (BASE + SEARCH_LR + "points_to_evaluate:\n  - {train.lr: 5.0}\n", "points_to_evaluate[0].train.lr",
     "inside the bounds"),
    (BASE + SEARCH_LR + "points_to_evaluate:\n  - {train.lrr: 1.0e-3}\n", "points_to_evaluate[0].train.lrr",
     "use one of: train.lr"),
    (BASE + "search:\n  train.epochs: {type: int, low: 10, high: 40}\n", "scheduler.max_t", "set max_t"),
    (BASE.replace("base: tiny", "base: huge") + SEARCH_LR, "base", "use one of"),
    (BASE.replace("max_steps: 40", "max_steps: forty") + SEARCH_LR, "fixed.train.max_steps", "fix the value"),
    (BASE + "search: [\n", "not valid YAML at line", "fix the syntax"),
    (BASE.replace("name: t", "name: 'a b'") + SEARCH_LR, "experiment.name", "use letters"),
])
def test_validation_errors_are_one_line_with_key_and_fix(tmp_path, text, where, fix):
    msg = error_of(text, tmp_path)
    assert where in msg, msg
    assert fix in msg, msg


def test_categorical_whose_choices_change_on_resume(tmp_path):
    old = space_from(BASE + "search:\n  model.top_latents: {type: categorical, choices: [8, 16]}\n", tmp_path, "a.yaml")
    new = space_from(BASE + "search:\n  model.top_latents: {type: categorical, choices: [8, 32]}\n", tmp_path, "b.yaml")
    with pytest.raises(SpaceError) as e:
        check_resume_compatible(old, new)
    msg = str(e.value)
    assert "search.model.top_latents.choices" in msg and "changed from [8, 16] to [8, 32]" in msg
    assert "--name" in msg and "\n" not in msg
    same = space_from(BASE + "search:\n  model.top_latents: {type: categorical, choices: [8, 16]}\n", tmp_path, "c.yaml")
    check_resume_compatible(old, same)
    bounds = space_from(BASE + "search:\n  model.top_latents: {type: int, low: 8, high: 16}\n", tmp_path, "d.yaml")
    with pytest.raises(SpaceError, match="changed since the search started"):
        check_resume_compatible(old, bounds)


def test_cli_errors_are_one_line_with_exit_status_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "search:\n  train.lr: {type: float, low: 1.0e-2, high: 1.0e-4}\n")
    for args in ([str(bad)], [str(bad), "--dry-run"], [str(tmp_path / "missing.yaml")],
                 [str(ROOT / "spaces" / "quickstart.yaml"), "--address", "127.0.0.1:1", "--storage", "relative/dir"],
                 [str(ROOT / "spaces" / "quickstart.yaml"), "--address", "127.0.0.1:1"],
                 [str(ROOT / "spaces" / "quickstart.yaml"), "--resume", "--storage", str(tmp_path / "none")]):
        r = subprocess.run([sys.executable, "-m", "search.run", *args], capture_output=True, text=True,
                           cwd=tmp_path, timeout=120)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert "Traceback" not in r.stderr
    assert "swap them" in subprocess.run([sys.executable, "-m", "search.run", str(bad)], capture_output=True,
                                         text=True, cwd=tmp_path).stderr


def test_cluster_storage_must_be_shared(tmp_path):
    r = subprocess.run([sys.executable, "-m", "search.run", str(ROOT / "spaces" / "quickstart.yaml"),
                        "--address", "127.0.0.1:1", "--storage", "results"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "relative path" in r.stderr and "s3://" in r.stderr and "--shared-storage" in r.stderr


def test_dry_run_prints_sampled_configurations():
    r = subprocess.run([sys.executable, "-m", "search.run", "spaces/quickstart.yaml", "--dry-run"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout and r.stdout.count("sample ") >= 3 and "latent layers" in r.stdout


@pytest.mark.parametrize("name", ["mnist", "omniglot", "cifar10"])
def test_paper_scale_spaces_search_the_extensions(name, tmp_path):
    """The head's size and the inference-regularizer weight reach the trial configs; the
    regularizer (a draw from the model at every step, pixel by pixel with a head) is searched only
    for models without a head."""
    s = space_from((ROOT / "spaces" / f"{name}.yaml").read_text(), tmp_path)
    seen_head = seen_reg = False
    for params in s.sample(16, seed=0):
        cfg = s.trial_config(params)
        assert cfg.model.ar_layers == params["model.ar_layers"]
        assert ("model.ar_channels" in params) == (cfg.model.ar_layers > 0)
        if cfg.model.ar_layers > 0:
            seen_head = True
            assert cfg.train.inference_reg_weight == 0.0
        else:
            seen_reg = True
            assert cfg.train.inference_reg_weight == params["train.inference_reg_weight"] > 0
    assert seen_head and seen_reg


def test_a_key_set_twice_needs_a_condition(tmp_path):
    msg = error_of(BASE + "search:\n  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n"
                          "  lr2: {key: train.lr, type: float, low: 1.0e-4, high: 1.0e-2}\n", tmp_path)
    assert "search.lr2" in msg and "sets train.lr, which search.train.lr sets too" in msg and "`when`" in msg
    s = space_from(BASE + "search:\n  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n"
                          "  big: {type: categorical, choices: [true, false]}\n"
                          "  lr2: {key: train.lr, type: categorical, choices: [0.5], when: {big: true}}\n", tmp_path)
    for params in s.sample(10, seed=0):
        assert s.trial_config(params).train.lr == (0.5 if params["big"] else params["train.lr"])


def test_an_image_folder_space_counts_its_budget_from_the_folder(tmp_path):
    """The search asks matnet.budget how many reports a trial makes, for image folders too (it used
    to die with KeyError: 'image-folder' in a table of its own)."""
    from tests.helpers import write_photos
    write_photos(tmp_path / "photos")
    text = ("experiment: {name: faces, num_samples: 2}\nbase: faces-occluders\n"
            "data: {image_folder: %s, val_size: 2}\nfixed:\n  train: {batch_size: 3, epochs: 4, device: cpu}\n"
            "search:\n  train.lr: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}\n")
    (tmp_path / "faces.yaml").write_text(text % (tmp_path / "photos"))
    assert load_space(tmp_path / "faces.yaml").reports_per_trial() == 4
    r = subprocess.run([sys.executable, "-m", "search.run", str(tmp_path / "faces.yaml"), "--dry-run"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0 and "valid" in r.stdout and "ASHA over 4 reports" in r.stdout, r.stderr
    (tmp_path / "nowhere.yaml").write_text(text % (tmp_path / "nowhere"))
    msg = error_of((tmp_path / "nowhere.yaml").read_text(), tmp_path)
    assert "data:" in msg and "no such folder" in msg, msg
    msg = error_of(text.replace("data: {image_folder: %s, val_size: 2}\n", ""), tmp_path)
    assert "needs data.image_folder" in msg, msg


@pytest.mark.parametrize("extra, where, says", [
    ("fixed:\n  train: {max_steps: 40, eval_every_steps: 10, batch_size: 50, lr: -0.5}\n", "fixed.train.lr", "train.lr"),
    ("fixed:\n  train: {max_steps: 40, eval_every_steps: 10, batch_size: 50}\n  model: {likelihood: logistic}\n",
     "fixed.model.likelihood", "binarize"),
    ("fixed:\n  train: {max_steps: -5, eval_every_steps: 10, batch_size: 50}\n", "fixed.train.max_steps", "max_steps"),
])
def test_a_base_config_matnet_cannot_train_is_refused_when_the_file_is_read(tmp_path, extra, where, says):
    text = BASE.split("fixed:")[0] + extra + "search:\n  model.top_latents: {type: categorical, choices: [8, 16]}\n"
    msg = error_of(text, tmp_path)
    assert where in msg and says in msg, msg


def test_the_dry_run_validates_every_sampled_trial_as_training_will(tmp_path):
    """Anything the dry run calls valid can start training: a draw matnet would refuse fails it."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "search:\n  model.likelihood: {type: categorical, choices: [logistic]}\n")
    r = subprocess.run([sys.executable, "-m", "search.run", str(bad), "--dry-run"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "sample 1 (model.likelihood=logistic) is not a config matnet can train" in lines[0]
    assert "binarize" in lines[0]


def test_the_searcher_draws_again_instead_of_starting_a_trial_that_cannot_train(tmp_path):
    from matnet.config import ConfigError
    from search.tune.searcher import OptunaSearcher
    from search.store.study import StudyRef
    s = space_from(BASE + "search:\n  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n", tmp_path)

    def check(params):
        if params["train.lr"] > 1e-3:
            raise ConfigError(f"train.lr={params['train.lr']}: too large here")
    study = StudyRef(str(tmp_path / "optuna.journal"), "draws")
    study.create("min")
    searcher = OptunaSearcher(s.suggest, "val_elbo_nats", "min", study=study,
                              sampler=optuna.samplers.RandomSampler(seed=0), check=check)
    drawn = [searcher.suggest(f"t{i}")["train.lr"] for i in range(5)]
    assert all(lr <= 1e-3 for lr in drawn)
    invalid = [t for t in searcher.study.trials if "invalid" in t.user_attrs]
    assert invalid and all(t.state == optuna.trial.TrialState.FAIL and "too large" in t.user_attrs["invalid"]
                           for t in invalid)
    never_study = StudyRef(str(tmp_path / "optuna.journal"), "never")
    never_study.create("min")
    never = OptunaSearcher(s.suggest, "val_elbo_nats", "min", study=never_study,
                           check=lambda p: (_ for _ in ()).throw(ConfigError("no")))
    assert never.suggest("x") == never.FINISHED
