"""The paper's metrics against matrices computed by hand."""

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmrt.cli import main
from mmrt.errors import UserError
from mmrt.robustness import PMatrix, robustness_report

# Two modalities, three training sets. Hand computation of every figure is in the test below.
TWO = {
    "modalities": ["audio", "video"],
    "scores": {
        "audio": {"audio": 0.8, "video": 0.2, "audio+video": 0.7},
        "video": {"audio": 0.1, "video": 0.6, "audio+video": 0.5},
        "audio+video": {"audio": 0.7, "video": 0.5, "audio+video": 0.9},
    },
}


def approx(d):
    return {k: pytest.approx(v) for k, v in d.items()}


def test_two_modalities_by_hand():
    r = robustness_report(PMatrix.from_json(TWO))
    # P(M_T): a (0.8+0.2+0.7)/3, v (0.1+0.6+0.5)/3, av (0.7+0.5+0.9)/3; R(M_T): 0.2, 0.1, 0.5
    assert r["overall"] == approx({"P_best": 0.7, "R_best": 0.5, "P": (1.7 / 3 + 0.4 + 0.7) / 3,
                                   "R": 0.8 / 3})
    # Missing at Test: only av has strict subsets: {a: 0.7, v: 0.5}
    assert r["missing"] == approx({"P_best": 0.6, "R_best": 0.5, "P": 0.6, "R": 0.5})
    # Added at Test: a -> av 0.7, v -> av 0.5
    assert r["added"] == approx({"P_best": 0.7, "R_best": 0.7, "P": 0.6, "R": 0.6})
    # Transferability: a -> v 0.2, v -> a 0.1
    assert r["transfer"] == approx({"P_best": 0.2, "R_best": 0.2, "P": 0.15, "R": 0.15})
    assert r["by_overlap"]["0"] == approx({"P": 0.15, "R": 0.15})
    # k=1: a {a .8, av .7}, v {v .6, av .5}, av {a .7, v .5}
    assert r["by_overlap"]["1"] == approx({"P": (0.75 + 0.55 + 0.6) / 3, "R": (0.7 + 0.5 + 0.5) / 3})
    assert r["by_overlap"]["2"] == approx({"P": 0.9, "R": 0.9})
    assert r["best_eval"] == {"audio": "audio", "video": "video", "audio+video": "audio+video"}


def test_three_modalities_strata_by_hand():
    mods = ["audio", "video", "text"]
    keys = ["+".join(c) for k in (1, 2, 3) for c in itertools.combinations(mods, k)]
    # p = 0.1 * (position of M_E in keys + 1) for every training set, except a marked row
    row = {k: round(0.1 * (i + 1), 1) for i, k in enumerate(keys)}
    doc = {"modalities": mods, "scores": {"audio+video": row, "text": row}}
    r = robustness_report(PMatrix.from_json(doc))
    # audio+video: missing {audio .1, video .2}; added {a+v+t .7}; transfer {text .3}
    # text: missing none; added {a+t .5, v+t .6, a+v+t .7}; transfer {a .1, v .2, a+v .4}
    assert r["missing"] == approx({"P_best": 0.15, "R_best": 0.1, "P": 0.15, "R": 0.1})
    assert r["added"] == approx({"P_best": 0.7, "R_best": 0.7, "P": (0.7 + 0.6) / 2, "R": 0.6})
    assert r["transfer"] == approx({"P_best": 0.3, "R_best": 0.3, "P": (0.3 + 0.7 / 3) / 2,
                                    "R": 0.2})
    assert r["per_train"]["missing"].keys() == {"audio+video"}  # text has no strict subset


@given(st.lists(st.floats(0, 1), min_size=9, max_size=9))
def test_with_two_modalities_added_and_transfer_have_p_equal_r(values):
    keys = ["audio", "video", "audio+video"]
    scores = {mt: dict(zip(keys, values[3 * i:3 * i + 3], strict=True)) for i, mt in enumerate(keys)}
    r = robustness_report(PMatrix.from_json({"modalities": ["audio", "video"], "scores": scores}))
    for stratum in ("added", "transfer"):
        assert r[stratum]["P"] == pytest.approx(r[stratum]["R"])
        assert r[stratum]["P_best"] == pytest.approx(r[stratum]["R_best"])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["scores"]["audio"].pop("video"), r"lacks eval set\(s\) \['video'\]"),
    (lambda d: d["scores"]["audio"].update({"smell": 0.1}), "unknown modality 'smell'"),
    (lambda d: d["scores"].update({"video+audio": d["scores"]["audio"]}), "write it as"),
    (lambda d: d["scores"]["video"].update({"audio": "high"}), "expected a finite number"),
    (lambda d: d.pop("modalities"), "'modalities' must be"),
    (lambda d: d.update({"scores": {}}), "'scores' must be a non-empty object"),
])
def test_bad_p_matrices_name_the_problem(mutate, message):
    doc = json.loads(json.dumps(TWO))
    mutate(doc)
    with pytest.raises(UserError, match=message):
        PMatrix.from_json(doc)


def test_cli_json_and_markdown(tmp_path, capsys):
    f = tmp_path / "p.json"
    f.write_text(json.dumps(TWO))
    assert main(["metrics", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("overall", "missing", "added", "transfer"):
        assert set(out[key]) == {"P_best", "R_best", "P", "R"}
    assert out["overall"]["R_best"] == pytest.approx(0.5)
    assert main(["metrics", str(f)]) == 0
    md = capsys.readouterr().out
    assert "| Overall P_best |" in md and "Missing at Test P" in md and "| audio+video |" in md


def test_cli_bad_input_is_one_line_and_non_zero(tmp_path, capsys):
    f = tmp_path / "p.json"
    f.write_text("{not json")
    assert main(["metrics", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid JSON" in err and str(f) in err
    assert main(["metrics", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
