"""The methods compared today (sce, nce-rce, elr, sop, coteaching, bootstrap, ls): each loss against a
numpy computation of the paper's formula, each method end to end (CLI, estimator, detect), exact
resume of the stateful ones, the per-example state's checkpointing, bad input and presets."""

import json

import numpy as np
import pytest
import torch

from limitlab import robust_losses as rl
from limitlab.cli import main
from limitlab.config import Config
from limitlab.errors import LimitlabError
from limitlab.methods import METHODS, build_objective
from limitlab.objectives_state import SOP, CoTeaching
from limitlab.train import train

MODERN = ("sce", "nce-rce", "elr", "sop", "coteaching", "bootstrap", "ls")
TINY = ["--dataset", "digits", "--noise", "uniform:0.4", "--train-size", "200", "--batch-size", "64", "--quiet"]


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 4, generator=g, dtype=torch.float64) * 2
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 1])
    return logits, labels


def _np(logits):
    z = logits.detach().numpy().astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def _onehot(labels, k):
    return np.eye(k)[labels.numpy()]


# ------------------------------------------------------------------------------------- the losses
def test_sce_is_alpha_ce_plus_beta_reverse_ce_with_log_zero_minus_4(batch):
    logits, labels = batch
    p, e = _np(logits), _onehot(labels, 4)
    log_q = np.where(e == 1, 0.0, -4.0)  # the label distribution, log 0 taken as -4
    ce = -np.log((p * e).sum(1))
    rce = -(p * log_q).sum(1)
    for alpha, beta in ((0.1, 1.0), (1.0, 0.3)):
        assert rl.sce_loss(logits, labels, alpha, beta).item() == pytest.approx((alpha * ce + beta * rce).mean(), rel=1e-6)


def test_nce_rce_normalises_ce_by_the_sum_over_classes(batch):
    logits, labels = batch
    p, e = _np(logits), _onehot(labels, 4)
    nce = -np.log((p * e).sum(1)) / -np.log(p).sum(1)
    rce = -(p * np.where(e == 1, 0.0, -4.0)).sum(1)
    assert rl.nce_rce_loss(logits, labels, 1.0, 1.0).item() == pytest.approx((nce + rce).mean(), rel=1e-6)
    assert rl.nce_rce_loss(logits, labels, 2.0, 0.0).item() == pytest.approx(2 * nce.mean(), rel=1e-6)
    assert 0 < nce.min() and nce.max() < 1  # normalised


@pytest.mark.parametrize("hard,beta", [(False, 0.95), (True, 0.8)])
def test_bootstrap_soft_and_hard_targets(batch, hard, beta):
    logits, labels = batch
    p, e = _np(logits), _onehot(labels, 4)
    z = np.eye(4)[p.argmax(1)] if hard else p
    expected = -((beta * e + (1 - beta) * z) * np.log(p)).sum(1).mean()
    assert rl.bootstrap_loss(logits, labels, beta, hard).item() == pytest.approx(expected, rel=1e-6)


def test_soft_bootstrap_gradient_includes_the_entropy_term(batch):
    """Soft bootstrapping is β·CE + (1 − β)·H(p): its gradient is that of the entropy too (Reed et al.)."""
    logits, labels = batch
    x = logits.clone().requires_grad_(True)
    rl.bootstrap_loss(x, labels, 0.9).backward()
    y = logits.clone().requires_grad_(True)
    log_p = y.log_softmax(1)
    ce = -log_p.gather(1, labels[:, None]).squeeze(1)
    entropy = -(log_p.exp() * log_p).sum(1)
    (0.9 * ce + 0.1 * entropy).mean().backward()
    torch.testing.assert_close(x.grad, y.grad)


@pytest.mark.parametrize("rate", [0.4, 0.0, -0.5, -1.0])
def test_label_smoothing_is_ce_against_the_smoothed_labels(batch, rate):
    logits, labels = batch
    p, e = _np(logits), _onehot(labels, 4)
    target = (1 - rate) * e + rate / 4
    expected = -(target * np.log(p)).sum(1).mean()
    assert rl.label_smoothing_loss(logits, labels, rate).item() == pytest.approx(expected, rel=1e-6)


def test_elr_targets_and_loss_over_two_steps():
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 3)
    spec = METHODS.get("elr")
    objective = spec.build(lambda role, head_bias=True: net, Config(method="elr", elr_lambda=2.0, elr_beta=0.6),
                           {"num_train": 6, "num_classes": 3})
    x, y, index = torch.randn(4, 5), torch.tensor([0, 1, 2, 0]), torch.tensor([5, 0, 3, 1])
    t = np.zeros((6, 3))
    for _ in range(2):
        loss, _ = objective(x, y, index)
        p = np.clip(_np(net(x)), 1e-4, 1 - 1e-4)
        t[index] = 0.6 * t[index] + 0.4 * p / p.sum(1, keepdims=True)
        ce = -np.log(_np(net(x))[np.arange(4), y.numpy()])
        expected = ce.mean() + 2.0 * np.log(1 - (t[index] * p).sum(1)).mean()
        assert loss.item() == pytest.approx(expected, rel=1e-5)
        np.testing.assert_allclose(objective.targets.numpy(), t, rtol=1e-5, atol=1e-7)
    assert np.all(t[[2, 4]] == 0)  # rows of examples not in the batch are untouched


def _sop_numpy(logits, labels, u, v, eps=1e-4):
    p, e = _np(logits), _onehot(labels, logits.shape[1])
    big_u = np.clip(u ** 2 * e, 0, 1)
    big_v = np.clip(v ** 2 * (1 - e), 0, 1)
    s = np.maximum(p + big_u - big_v, eps)
    s = np.clip(s / np.maximum(s.sum(1, keepdims=True), eps), eps, 1)
    ce = -(e * np.log(s)).sum(1).mean()
    hard = np.eye(logits.shape[1])[p.argmax(1)]
    return ce + ((hard + big_u - big_v - e) ** 2).sum(1).mean()


def test_sop_loss_and_its_stop_gradient(batch):
    logits, labels = batch
    g = torch.Generator().manual_seed(1)
    u = (torch.rand(9, 1, generator=g, dtype=torch.float64) * 0.8).requires_grad_(True)
    v = (torch.rand(9, 4, generator=g, dtype=torch.float64) * 0.5).requires_grad_(True)
    loss, ce, mse = rl.sop_loss(logits.float(), labels, u, v)
    assert loss.item() == pytest.approx(_sop_numpy(logits, labels, u.detach().numpy(), v.detach().numpy()), rel=1e-5)
    # v learns from the consistency term only: the CE term's gradient to v is zero
    (grad_v,) = torch.autograd.grad(ce, v, retain_graph=True, allow_unused=True)
    assert grad_v is None or torch.count_nonzero(grad_v) == 0
    (grad_u,) = torch.autograd.grad(mse, u)
    assert torch.count_nonzero(grad_u) > 0


def test_sop_updates_u_v_by_its_own_sgd_and_the_adam_only_the_classifier():
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 3)
    objective = SOP(net, num_train=8, num_classes=3, lr_u=10.0, lr_v=5.0)
    with torch.no_grad():
        objective.u.uniform_(0.1, 0.5), objective.v.uniform_(0.1, 0.5)
    optimizer = torch.optim.Adam(objective.optimized_parameters(), lr=1e-3)
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in net.parameters()}
    u0, v0 = objective.u.detach().clone(), objective.v.detach().clone()
    x, y, index = torch.randn(4, 5), torch.tensor([0, 1, 2, 0]), torch.tensor([6, 1, 2, 4])
    loss, _ = objective(x, y, index)
    loss.backward()
    grad_u, grad_v = objective.u.grad.clone(), objective.v.grad.clone()
    optimizer.step()
    objective.after_step()
    torch.testing.assert_close(objective.u.detach(), u0 - 10.0 * grad_u)
    torch.testing.assert_close(objective.v.detach(), v0 - 5.0 * grad_v)
    assert objective.u.grad is None and objective.v.grad is None  # no accumulation into the next step
    others = [i for i in range(8) if i not in index.tolist()]
    assert torch.equal(objective.u.detach()[others], u0[others]) and not torch.equal(objective.u.detach(), u0)


def test_coteaching_exchanges_small_loss_examples_and_ramps_r():
    torch.manual_seed(0)
    f, g = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    ce_f = -np.log(_np(f)[np.arange(10), y.numpy()])
    ce_g = -np.log(_np(g)[np.arange(10), y.numpy()])
    keep = 7  # ⌊(1 − 0.3) · 10⌋
    by_f, by_g = np.argsort(ce_f, kind="stable")[:keep], np.argsort(ce_g, kind="stable")[:keep]
    loss_f, loss_g = rl.coteaching_losses(f, g, y, 0.3)
    assert loss_f.item() == pytest.approx(ce_f[by_g].mean(), rel=1e-6)
    assert loss_g.item() == pytest.approx(ce_g[by_f].mean(), rel=1e-6)

    objective = CoTeaching(torch.nn.Linear(2, 3), torch.nn.Linear(2, 3), tau=0.4)
    rates = []
    for epoch in (1, 2, 6, 11, 30):
        objective.start_epoch(epoch)
        rates.append(objective.forget_rate)
    assert rates == pytest.approx([0.0, 0.04, 0.2, 0.4, 0.4])


# ------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("method,extra", [("sce", []), ("nce-rce", []), ("elr", []), ("sop", []),
                                          ("coteaching", ["--coteaching-tau", "noise"]),
                                          ("bootstrap", ["--bootstrap", "hard"]), ("ls", ["--ls-rate", "-0.4"])])
def test_each_method_trains_through_the_cli(tmp_path, method, extra):
    out = tmp_path / method
    assert main(["train", *TINY, "--epochs", "2", "--method", method, *extra, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == method and summary["epochs_run"] == 2 and 0 <= summary["test_accuracy"] <= 1
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    if method == "elr":  # the per-example state is in the checkpoint, and was written to
        assert ckpt["objective"]["targets"].shape == (200, 10) and (ckpt["objective"]["targets"].sum(1) > 0).all()
    if method == "sop":
        assert ckpt["objective"]["u"].shape == (200, 1) and ckpt["objective"]["v"].shape == (200, 10)
        assert ckpt["objective"]["u"].abs().max() > 1e-6  # moved from its N(0, 1e-8²) start
    if method == "coteaching":
        assert any(k.startswith("peer.") for k in ckpt["objective"])
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        # τ = the known noise rate (uniform 0.4 on 200 labels); R = τ/10 in epoch 2
        rate = float(np.load(out / "noisy_labels.npz")["train_rate"])
        assert rows[1]["train_kept_fraction"] == pytest.approx(int((1 - rate / 10) * 64) / 64, abs=0.02)


@pytest.mark.parametrize("method", ["elr", "sop", "coteaching"])
def test_stateful_method_resumes_bit_for_bit(tmp_path, method):
    config = Config(dataset="digits", noise="uniform:0.4", train_size=200, epochs=4, batch_size=64, method=method,
                    patience=None, **({"coteaching_tau": 0.5} if method == "coteaching" else {}))
    train(config, tmp_path / "full", progress=False)

    def kill_after_epoch_2(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", progress=False, on_epoch_end=kill_after_epoch_2)
    train(config, tmp_path / "killed", resume=True, progress=False)
    read = lambda d: [{k: v for k, v in json.loads(x).items() if "seconds" not in k}  # noqa: E731
                      for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert read(tmp_path / "killed") == read(tmp_path / "full")
    full = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)["objective"]
    resumed = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)["objective"]
    assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)


@pytest.mark.parametrize("method", ["sop", "coteaching"])
def test_detect_rebuilds_a_stateful_run(tmp_path, method):
    out = tmp_path / method
    assert main(["train", *TINY, "--epochs", "2", "--method", method, "--out", str(out)]) == 0
    assert main(["detect", str(out), "--out", str(tmp_path / "det"), "--quiet", "--split", "train"]) == 0
    lines = (tmp_path / "det" / "label_errors.csv").read_text().splitlines()
    assert len(lines) == 201


@pytest.mark.parametrize("method", MODERN)
def test_estimator_fits_each_method(method):
    from limitlab import LimitClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    clf = LimitClassifier(method=method, epochs=3, batch_size=32, random_state=0, patience=None).fit(x, y)
    assert clf.predict_proba(x).shape == (120, 2) and len(clf.label_issues_) == 120
    assert clf.score(x, y) > 0.6


def test_estimator_coteaching_without_a_known_noise_rate_is_one_sentence():
    from limitlab import LimitClassifier

    x, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    with pytest.raises(ValueError, match="give τ as a number"):  # the estimator's ValueError, one sentence
        LimitClassifier(method="coteaching", method_options={"coteaching_tau": None}, epochs=1).fit(x, y)


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("flags,message", [
    (["--method", "ls", "--ls-rate", "1"], "--ls-rate must be in [-1, 1)"),
    (["--method", "ls", "--ls-rate", "-1.5"], "--ls-rate must be in [-1, 1)"),
    (["--method", "bootstrap", "--bootstrap", "medium"], "--bootstrap must be soft or hard"),
    (["--method", "bootstrap", "--bootstrap-beta", "1.2"], "--bootstrap-beta must be in [0, 1]"),
    (["--method", "elr", "--elr-beta", "1"], "--elr-beta must be in [0, 1)"),
    (["--method", "elr", "--elr-lambda", "-1"], "--elr-lambda must be >= 0"),
    (["--method", "sop", "--sop-lr-v", "-1"], "--sop-lr-u and --sop-lr-v must be >= 0"),
    (["--method", "sce", "--sce-alpha", "-1"], "must be >= 0"),
    (["--method", "coteaching", "--coteaching-tau", "1"], "--coteaching-tau must be in [0, 1)"),
    (["--method", "coteaching", "--coteaching-tau", "noise", "--noise", "none"], "give τ as a number"),
    (["--method", "ce", "--elr-lambda", "2"], "--elr-lambda is not read by --method ce"),
])
def test_bad_options_are_one_sentence(tmp_path, capsys, flags, message):
    out = tmp_path / "r"
    code = main(["train", "--dataset", "digits", "--epochs", "1", *flags, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not out.exists()


@pytest.mark.parametrize("method", ["elr", "sop"])
def test_per_example_state_is_refused_under_ddp(monkeypatch, method):
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    with pytest.raises(LimitlabError, match=f"--method {method} keeps state per training example"):
        build_objective(method, lambda role, head_bias=True: torch.nn.Linear(2, 3), Config(method=method),
                        {"num_train": 4, "num_classes": 3})


# ------------------------------------------------------------------------------- presets, reports
def test_recipe_presets_and_paper_tables():
    from limitlab.experiments.expand import expand
    from limitlab.experiments.presets import PRESETS

    specs = expand("cifar10n-worst-elr")
    assert len(specs) == 12 and all(s.config.epochs == 120 and s.config.batch_size == 128 and
                                    s.config.model == "resnet34" and s.config.noise.endswith(":worse_label")
                                    for s in specs)
    group = {s.config.method for s in expand("cifar10-uniform0.5-recipes")}
    assert group == {"ce", *MODERN}
    assert "SGD" in PRESETS["recipes"].description  # says what differs from the papers
    # the LIMIT paper's tables keep the paper's methods
    assert not {s.config.method for s in expand("mnist-n1000-uniform0.8")} & set(MODERN)
    assert not {s.config.method for s in expand("cifar10-uniform0.4")} & set(MODERN)


def test_dry_run_of_a_recipe_preset(tmp_path, capsys):
    assert main(["sweep", "cifar10n-aggre-sop", "--out", str(tmp_path / "s"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([x for x in lines if "_sop_sop-lr-u" in x]) == 9 and "9 runs" in lines[-1]
    assert not (tmp_path / "s").exists()


def test_labels_in_reports_and_help():
    from limitlab.cli import build_parser

    labels = {name: METHODS.get(name).label for name in MODERN}
    assert labels["nce-rce"] == "NCE+RCE" and labels["coteaching"] == "Co-teaching"
    help_text = " ".join(build_parser("train")._subparsers._group_actions[0].choices["train"].format_help().split())
    for flag in ("--sce-alpha", "--nce-rce-beta", "--elr-lambda", "--sop-lr-u", "--coteaching-tau", "--bootstrap-beta",
                 "--ls-rate"):
        assert flag in help_text


def test_report_orders_them_by_registration_and_keeps_bootstrap_variants_apart(tmp_path):
    from limitlab.analysis.runs import collect_runs
    from limitlab.analysis.tables import aggregate

    runs = [("ls", {}), ("ce", {}), ("bootstrap", {"bootstrap": "hard"}), ("bootstrap", {}),
            ("elr", {"elr_lambda": 1.0}), ("elr", {"elr_lambda": 3.0})]
    for i, (method, options) in enumerate(runs):
        train(Config(dataset="digits", noise="uniform:0.4", train_size=100, epochs=1, batch_size=50, method=method,
                     **options), tmp_path / f"r{i}", progress=False)
    rows = aggregate(collect_runs(tmp_path))
    assert [r.method for r in rows] == ["ce", "elr", "bootstrap", "bootstrap", "ls"]
    assert sorted(r.variant for r in rows if r.method == "bootstrap") == ["", "bootstrap=hard"]  # default unnamed
    (elr,) = [r for r in rows if r.method == "elr"]
    assert set(elr.selected) == {"elr_lambda"} and elr.settings == 2  # a hyperparameter: selected, not a variant
