"""limitlab review without a browser: the decisions log, the export, -1 in --noise labels:FILE, the
server's security checks, table runs, label_errors.csv with a split column, and the Python API."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

from review_helpers import decisions, digits_run, serve, table_run  # noqa: E402

from limitlab import rundir  # noqa: E402
from limitlab.cli import main  # noqa: E402
from limitlab.config import Config  # noqa: E402
from limitlab.data.run import prepare_data  # noqa: E402
from limitlab.errors import LimitlabError  # noqa: E402
from limitlab.noise_files import load_noisy_labels  # noqa: E402
from limitlab.review.export import export_run, label_after, summarize  # noqa: E402
from limitlab.review.state import Decisions  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return digits_run(tmp_path_factory.mktemp("review"))


# --------------------------------------------------------------------------- decisions log
def test_decisions_replay_undo_and_batches(tmp_path):
    path = tmp_path / "review" / "decisions.jsonl"
    d = Decisions(path)
    d.decide([("train", 5)], "accept", 3)
    d.decide([("train", 7)], "exclude")
    d.decide([("train", 5)], "keep")                       # a second decision replaces the first
    d.decide([("train", 1), ("train", 2)], "relabel", 4)  # one batch
    assert d.undo() == [("train", 1), ("train", 2)]       # undo takes back the whole batch
    assert d.undo() == [("train", 5)]                     # ... then the keep: the accept stands again
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["decision"] for x in lines] == ["accept", "exclude", "keep", "relabel", "relabel", "undo", "undo"]
    assert all({"index", "decision", "time"} <= set(x) for x in lines)
    again = Decisions(path)                               # replay gives the same standing decisions
    assert again.standing == d.standing
    assert again.get(("train", 5))["decision"] == "accept" and again.get(("train", 5))["label"] == 3
    assert again.get(("train", 1)) is None and again.get(("train", 7))["decision"] == "exclude"


def test_a_line_cut_short_by_a_crash_is_ignored(tmp_path):
    path = tmp_path / "decisions.jsonl"
    Decisions(path).decide([("train", 3)], "keep")
    with open(path, "a") as f:
        f.write('{"index": 4, "deci')
    assert set(Decisions(path).standing) == {("train", 3)}


def test_a_broken_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "decisions.jsonl"
    path.write_text('{"index": 1, "decision": "keep"}\nnot json\n{"index": 2, "decision": "keep"}\n')
    with pytest.raises(LimitlabError, match="line 2"):
        Decisions(path)


def test_decision_needs_its_label(tmp_path):
    d = Decisions(None)
    with pytest.raises(LimitlabError, match="needs label"):
        d.decide([("train", 0)], "accept")
    with pytest.raises(LimitlabError, match="unknown decision"):
        d.decide([("train", 0)], "delete")


def test_summary_counts_by_hand():
    d = Decisions(None)
    keys = [("train", i) for i in range(5)]
    given, true = np.array([1, 2, 0, 0, 2]), np.array([0, 2, 1, 0, 1])
    d.decide([keys[0]], "accept", 0)    # right (true 0)
    d.decide([keys[1]], "keep")         # right (given 2 = true)
    d.decide([keys[2]], "relabel", 2)   # wrong (true 1)
    d.decide([keys[3]], "exclude")      # wrong (the given label 0 was right)
    d.decide([keys[4]], "unsure")       # not judged
    s = summarize(keys, given, true, d)
    assert s["counts"] == {"accept": 1, "keep": 1, "relabel": 1, "exclude": 1, "unsure": 1}
    assert (s["decided"], s["judged"], s["right"], s["changed"]) == (5, 4, 2, 3)
    assert [label_after(d.get(k), g) for k, g in zip(keys, given)] == [0, 2, 2, -1, 2]


# --------------------------------------------------------------------------- export and -1
def test_export_vector_and_retrain_leaves_excluded_out(run, tmp_path):
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(run, copy)
    with np.load(copy / rundir.NOISY_LABELS) as rec:
        train_index, train_noisy = rec["train_index"], rec["train_noisy"]
        val_index, val_labels = rec["val_index"], rec["val_labels"]
    d = Decisions(copy / "review" / "decisions.jsonl")
    a, b, c = (int(i) for i in train_index[:3])
    d.decide([("train", a)], "relabel", (int(train_noisy[0]) + 1) % 10)
    d.decide([("train", b), ("train", c)], "exclude")
    out = tmp_path / "fixed.npy"
    summary = export_run(copy, out)
    labels = np.load(out)
    from limitlab.data import load_dataset

    dataset_labels = load_dataset("digits").train_labels.numpy()
    assert len(labels) == len(dataset_labels) and summary["excluded"] == 2
    assert labels[a] == (train_noisy[0] + 1) % 10 and labels[b] == labels[c] == -1
    np.testing.assert_array_equal(labels[train_index[3:]], train_noisy[3:])   # the run's labels elsewhere
    np.testing.assert_array_equal(labels[val_index], val_labels)
    outside = np.setdiff1d(np.arange(len(labels)), np.concatenate([train_index, val_index]))
    np.testing.assert_array_equal(labels[outside], dataset_labels[outside])  # the dataset's beyond the run
    # --noise labels:FILE reads it, and a run on it trains on two fewer examples
    assert np.array_equal(load_noisy_labels(str(out), dataset_labels, 10), labels)
    config = Config(dataset="digits", noise=f"labels:{out}", train_size=400, device="cpu")
    before = prepare_data(Config(dataset="digits", noise="uniform:0.3", train_size=400, device="cpu"), "cpu")
    after = prepare_data(config, "cpu")
    assert len(after.train) == len(before.train) - 2
    assert b not in after.record["train_index"] and a in after.record["train_index"]
    # the CSV form says the same
    assert main(["review", str(copy), "--export", str(tmp_path / "fixed.csv")]) == 0
    assert np.array_equal(load_noisy_labels(str(tmp_path / "fixed.csv"), dataset_labels, 10), labels)


def test_label_file_rejects_other_negative_labels(tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.array([0, -2, 1]))
    with pytest.raises(LimitlabError, match="outside"):
        load_noisy_labels(str(path), np.array([0, 1, 1]), 2)
    np.save(path, np.array([-1, -1, -1]))
    with pytest.raises(LimitlabError, match="every example"):
        load_noisy_labels(str(path), np.array([0, 1, 1]), 2)


def test_export_refuses_unknown_suffix_and_changes_nothing_else(run, tmp_path, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}
    assert main(["review", str(run), "--export", str(tmp_path / "x.json")]) == 2
    assert "must end in" in capsys.readouterr().err
    assert main(["review", str(run), "--export", str(tmp_path / "x.npy")]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()} == before


def test_review_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["review", str(tmp_path), "--no-browser"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a run directory" in err and len(err.splitlines()) == 1


def test_without_the_extra_one_sentence(monkeypatch, run, capsys):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in ("starlette", "uvicorn"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    assert main(["review", str(run), "--no-browser"]) == 2
    assert "pip install 'limitlab[review]'" in capsys.readouterr().err


# --------------------------------------------------------------------------- security
@pytest.fixture(scope="module")
def server(run):
    s = serve(run)
    yield s
    s.stop()
    s.join(5)


ROUTES = ["/", "/api/state", "/api/suspects", "/api/card/0", "/api/confusion", "/static/app.js", "/img/train/0.png"]


def test_without_the_token_403_and_no_data(server):
    c = httpx.Client(base_url=f"http://127.0.0.1:{server.port}")
    for path in ROUTES:
        r = c.get(path)
        assert r.status_code == 403, path
        assert "index" not in r.text and "PNG" not in r.text
    assert c.get("/?token=wrong").status_code == 403
    for path in ("/api/decide", "/api/undo", "/api/done"):
        assert c.post(path, json={"ids": [0], "decision": "keep"}).status_code == 403, path
    assert server.review.decisions.standing == {}


def test_token_cookie_header_host_and_paths(server):
    c = httpx.Client(base_url=f"http://127.0.0.1:{server.port}")
    r = c.get(f"/?token={server.token}")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = c.get("/")
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no external assets
    # state changes need the token in a header as well as the cookie
    assert c.post("/api/decide", json={"ids": [0], "decision": "keep"}).status_code == 403
    # a DNS-rebound name in the Host header is refused
    assert c.get("/api/state", headers={"host": f"attacker.example:{server.port}"}).status_code == 400
    # examples by split and index only: no paths
    for path in ["/img/../config.json", "/img/train/..%2F..%2Fconfig.json.png", "/img/checkpoints/0.png",
                 "/img/train/99999999.png", "/static/..%2Fserver.py", "/static/index.html.bak"]:
        r = c.get(path)
        assert r.status_code == 404, path
        assert b"limitlab" not in r.content or path.startswith("/static") and r.content == b"not found"
    index = int(c.get("/api/card/0").json()["index"])
    png = c.get(f"/img/train/{index}.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


# --------------------------------------------------------------------------- tables
def test_table_card_and_corrected_csv(tmp_path):
    import pandas as pd

    run, source = table_run(tmp_path)
    s = serve(run)
    try:
        c = httpx.Client(base_url=f"http://127.0.0.1:{s.port}", headers={"x-review-token": s.token})
        c.get(f"/?token={s.token}")
        card = c.get("/api/card/0").json()
        names = [col["name"] for col in card["row"]["columns"]]
        assert names == ["length", "width", "colour"] and card["kind"] == "table"
        assert any(col["marked"] for col in card["row"]["columns"])
        rows = c.get("/api/suspects?limit=2").json()["rows"]
        c.post("/api/decide", json={"ids": [rows[0]["id"]], "decision": "accept"})
        c.post("/api/decide", json={"ids": [rows[1]["id"]], "decision": "exclude"})
    finally:
        s.stop()
        s.join(5)
    with pytest.raises(LimitlabError, match="input table"):
        export_run(run, source)
    out = tmp_path / "fixed.csv"
    summary = export_run(run, out)
    fixed, original = pd.read_csv(out), pd.read_csv(source)
    assert len(fixed) == len(original) - 1 and summary["dropped"] == 1
    errors = pd.read_csv(run / rundir.LABEL_ERRORS)
    first, second = errors.iloc[0], errors.iloc[1]
    expected = original.copy()
    expected.loc[first.file_row, "species"] = first.predicted_class      # the suggestion, by name
    expected = expected.drop(index=second.file_row).reset_index(drop=True)  # the excluded row is gone
    pd.testing.assert_frame_equal(fixed, expected)
    assert original.equals(pd.read_csv(source))                           # the input is unchanged


# --------------------------------------------------------------------------- split column
def test_label_errors_with_a_split_column(run, tmp_path):
    import shutil

    from limitlab.review.source import from_run

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with np.load(copy / rundir.NOISY_LABELS) as rec:
        val_index, val_labels = rec["val_index"], rec["val_labels"]
    lines = (copy / rundir.LABEL_ERRORS).read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    rows = [r for r in rows if r.get("split", "train") == "train"][:3]  # detect's own split column, if any
    header = [h for h in header if h != "split"]
    extra = [dict(rows[0], index=str(val_index[0]), given_label=str(val_labels[0]), rank="4"),
             dict(rows[0], index="7", given_label="1", rank="5")]
    with open(copy / rundir.LABEL_ERRORS, "w") as f:
        f.write(",".join(header + ["split"]) + "\n")
        for r, split in zip(rows + extra, ["train"] * 3 + ["validation", "test"]):
            f.write(",".join([r[h] for h in header] + [split]) + "\n")
    data = from_run(copy, progress=False)
    assert list(data.split) == ["train"] * 3 + ["validation", "test"]
    assert data.example("test", 7).shape == (1, 8, 8)
    d = Decisions(copy / "review" / "decisions.jsonl")
    d.decide([("validation", int(val_index[0]))], "exclude")
    d.decide([("test", 7)], "relabel", 2)
    export_run(copy, tmp_path / "v.npy")
    labels = np.load(tmp_path / "v.npy")
    export_run(run, tmp_path / "before.npy")
    before = np.load(tmp_path / "before.npy")
    assert labels[val_index[0]] == -1            # validation rows index the training set
    changed = np.flatnonzero(labels != before)
    assert changed.tolist() == [val_index[0]]    # the test decision does not touch the training set


# --------------------------------------------------------------------------- Python API
def test_review_labels_from_python_returns_labels_on_done():
    from limitlab import LimitClassifier
    from limitlab.data import load_dataset
    from limitlab.review import review_labels

    data = load_dataset("digits")
    x, y = data.train_images[:300].numpy(), data.train_labels[:300].numpy().copy()
    y[:30] = (y[:30] + 1) % 10
    clf = LimitClassifier(epochs=3, random_state=0, device="cpu").fit(x, y)
    result = {}

    def reviewer(url):
        def go():
            c = httpx.Client(base_url=url.split("/?")[0], follow_redirects=True)
            c.get(url)
            token = url.split("token=")[1]
            card = c.get("/api/card/0").json()
            assert len(card["top"]) == 3 and card["neighbours"]["given"]
            first = int(card["index"])
            c.post("/api/decide", json={"ids": [0], "decision": "relabel", "label": 5}, headers={"x-review-token": token})
            c.post("/api/decide", json={"ids": [1], "decision": "exclude"}, headers={"x-review-token": token})
            second = int(c.get("/api/card/1").json()["index"])
            result.update(first=first, second=second)
            c.post("/api/done", json={}, headers={"x-review-token": token})
        threading.Thread(target=go, daemon=True).start()

    labels = review_labels(clf, x, y, open_browser=False, on_start=reviewer)
    assert len(labels) == len(y) and labels[result["first"]] == 5 and labels[result["second"]] == -1
    others = np.setdiff1d(np.arange(len(y)), [result["first"], result["second"]])
    np.testing.assert_array_equal(labels[others], y[others])


def test_host_names_and_the_warning_off_loopback(capsys):
    from limitlab.review.serve import allowed_hosts, announce, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    assert "attacker.example" not in allowed_hosts("127.0.0.1")
    assert "192.168.1.4" in allowed_hosts("192.168.1.4")

    class Fake:
        host, url = "0.0.0.0", "http://0.0.0.0:1/?token=t"

    announce(Fake(), open_browser=False)
    out = capsys.readouterr()
    assert "http://0.0.0.0:1/?token=t" in out.out and "warning" in out.err
    announce(type("Local", (), {"host": "127.0.0.1", "url": "u"})(), open_browser=False)
    assert "warning" not in capsys.readouterr().err


def test_cli_runs_detect_first_serves_and_stops_on_ctrl_c(run, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import sys

    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("label_errors.csv", "review"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "limitlab", "review", str(copy), "--no-browser", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("review: open http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[2]
        assert (copy / rundir.LABEL_ERRORS).exists()          # detect ran first
        c = httpx.Client()
        assert c.get(url.split("?")[0]).status_code == 403
        assert c.get(url).status_code == 303
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "0 of" in out and "--export" in out


def test_python_api_with_a_find_label_issues_table():
    pd = pytest.importorskip("pandas")
    from limitlab.review.api import corrected, from_python
    from limitlab.review.server import Review

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    y = np.where(X["a"] > 0, "yes", "no")
    issues = pd.DataFrame({"is_label_issue": [True] + [False] * 39, "label_quality": np.linspace(0.01, 1, 40),
                           "given_label": y, "predicted_label": np.where(np.arange(40) == 0, "maybe", y)})
    data = from_python(issues, X, y)
    assert data.kind == "table" and data.class_names == ["maybe", "no", "yes"]
    assert data.index[0] == 0 and data.suggested[0] == 0      # ranked by label quality; the prediction suggested
    review = Review(data, Decisions(None))
    card = review.cards.card(0, None)
    assert [c["name"] for c in card["row"]["columns"]] == ["a", "b"]
    review.decisions.decide([data.key(0)], "accept", 0)
    review.decisions.decide([data.key(1)], "exclude")
    labels = corrected(data, review)
    assert labels[0] == "maybe" and labels[data.index[1]] is None and list(labels[2:]) == list(y[2:])
