"""The paper-table benchmark end to end on tiny data: two fresh draws, every run (MAE included) on one
training set, the rows pooled over draws and the claims computed from the runs' own results."""

import argparse
import copy
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest

from lab import paper_table, paper_table_report

pytestmark = pytest.mark.integration


def test_two_draws_give_every_row_pooled_and_each_claim_from_the_runs(tmp_path, monkeypatch):
    small = {name: dataclasses.replace(run, flags=(*run.flags, "--train-sets", "audio+video"))
             for name, run in paper_table.RUNS.items()}
    monkeypatch.setattr(paper_table, "RUNS", small)
    monkeypatch.setattr(paper_table, "fingerprint", lambda *written: "the checkout")  # edits beside the test
    out, record = tmp_path / "table", tmp_path / "record"
    argv = ["table", "--out", str(out), "--draws", "21,22", "--size", "tiny", "--mae",
            "--record", str(record)]
    monkeypatch.setattr(sys, "argv", argv)
    paper_table.main()
    doc = json.loads((out / "table.json").read_text())
    assert (record / "table.md").read_text() == (out / "table.md").read_text()  # the docs' page
    assert doc["draws"] == [21, 22] and [label for label in doc["rows"]] == [r[0] for r in paper_table.ROWS]
    for i, seed in enumerate((21, 22)):
        draw = out / f"draw-{seed}"
        train = (draw / "data" / "train.jsonl").read_text().splitlines()
        train10x = (draw / "data-10x" / "train.jsonl").read_text().splitlines()
        assert len(train) == 40 and len(train10x) == 400 and train10x[:40] == train
        main = json.loads((draw / "main" / "results.json").read_text())
        assert main["seeds"] == [seed] and main["settings"]["recipe"]["distill_source"] == "pretrain"
        assert json.loads((draw / "carve" / "results.json").read_text())["settings"]["recipe"][
            "distill_source"] == "carve"
        assert json.loads((draw / "pretrained-mae" / "config.json").read_text())["history"][0][
            "objective"] == "mae"
        ft = main["methods"]["ft"]["metrics"]["overall"]["R"]
        assert doc["rows"]["fine-tune"]["overall.R"]["each"][i] == ft
        text = [main["methods"][m]["metrics"]["per_train"]["transfer"]["audio+video"]["P"]
                for m in ("ft", "masd+wiseft")]  # trained on audio+video, scored on text alone
        assert doc["unseen_text"]["change"]["each"][i] == pytest.approx(text[1] - text[0])
    cell = doc["rows"]["fine-tune"]["overall.R"]
    assert cell["mean"] == pytest.approx(sum(cell["each"]) / 2)
    assert doc["command"].startswith("python -m lab.paper_table --out") and doc["commit"]
    made = json.loads((record / "draw-21.json").read_text())["runs"]["main"]["made"]
    assert made["resumed"] is False and made["minutes"] >= 0  # made in one call: its minutes are all of it
    table = (out / "table.md").read_text()
    masd = doc["rows"]["MASD (pretraining pool, 1x)"]["added.R"]["each"]
    diffs = [a - b for a, b in zip(masd, doc["rows"]["fine-tune"]["added.R"]["each"], strict=True)]
    claim = next(line for line in table.splitlines() if line.startswith("- MASD raises R on Added at Test"))
    assert f"each draw: {diffs[0]:+.3f}, {diffs[1]:+.3f}" in claim
    kept = json.loads((record / "draw-22.json").read_text())
    lp = kept["runs"]["probe"]["methods"]["lp"]  # contrastive's probe again, its scores kept
    probe = json.loads((out / "draw-22" / "probe" / "results.json").read_text())["methods"]["lp"]["scores"]
    assert lp["scores"] == probe and list(probe) == ["audio+video"] and len(probe["audio+video"]) == 7
    mae = kept["foundation_mae"]
    assert set(mae["losses"]) == {"audio", "video", "text"} and mae["made"]["resumed"] is False
    assert mae["pretraining_sha256"] == paper_table.foundation_digest(paper_table.Draw(
        argparse.Namespace(out=out, record=record, size="tiny"), 22).preset(), mae=True)
    assert "held_out" in mae["alignment"] and "| 22 | MAE foundation | " in table
    row = next(line for line in table.splitlines() if line.startswith("| audio+video | "))
    assert f"/ {probe['audio+video']['audio+video']:.3f})" in row  # each draw's beside the mean
    assert "## The best eval set per training set (Table 4" in table and "| MAE: MASD | " in table
    assert "(the paper's: 1.1 mAP against contrastive's 15.1): " in table  # nothing superseded to mark
    lp_r = doc["rows"]["linear probe"]["overall.R"]["mean"]
    assert f"- the linear probe alone: Overall R {lp_r:.3f}, P " in table
    change = doc["unseen_text"]["change"]
    assert f"the change {change['mean']:+.3f} (each draw: {change['each'][0]:+.3f}, " in table
    collapse = next(line for line in table.splitlines() if line.startswith("- MAE alone collapses"))
    gap = doc["rows"]["MAE: fine-tune"]["transfer.P"]["each"][1] - doc["per_draw"]["22"]["chance"]
    assert f", {gap:+.3f} from chance by draw" in collapse and "not measured" not in collapse
    assert "draw 22's foundation, mean retrieval over the pairs: held-out" in table
    for name in ("overlap.png", "robustness_vs_performance.png"):
        assert (out / name).stat().st_size > 1000
    # a draw's folder is not reused under other settings
    monkeypatch.setattr(sys, "argv", ["table", "--out", str(out), "--draws", "21", "--size", "small"])
    with pytest.raises(SystemExit, match="draw-21 was made with"):
        paper_table.main()
    # a fresh checkout with the record and no run folder: nothing is run again, the table is the same
    shutil.rmtree(out)
    real_mmrt = paper_table.mmrt
    monkeypatch.setattr(paper_table, "mmrt", lambda argv: pytest.fail(f"ran {argv}"))
    monkeypatch.setattr(sys, "argv", argv)
    paper_table.main()
    assert json.loads((out / "table.json").read_text())["rows"] == doc["rows"]
    monkeypatch.setattr(sys, "argv", [*argv, "--runs", "main"])  # part of the table, from the record alone
    paper_table.main()
    partial = (out / "table.md").read_text()
    assert "--runs main`" in partial and "**Part of the table**" in partial
    assert "fine-tune on 10x the labels" not in json.loads((out / "table.json").read_text())["rows"]
    assert "| 21 | main | " in (out / "table.md").read_text()  # where each run was made
    monkeypatch.setattr(sys, "argv", [*argv, "--runs", "mae,probe"])  # MAE's alone: no contrastive rows
    paper_table.main()
    assert "| MAE: fine-tune | " in (out / "table.md").read_text()
    monkeypatch.setattr(sys, "argv", ["table", "--out", str(tmp_path / "other"), "--draws", "21", "--size",
                                      "small", "--record", str(record)])
    with pytest.raises(SystemExit, match="draw-21.json was made with"):
        paper_table.main()
    # a run missing from the record is made again, on the foundation the record keeps (not pretrained again)
    assert (record / "draw-21" / "pretrained" / "model.safetensors").is_file()
    assert (record / "draw-21" / "pretrained-mae" / "config.json").is_file()
    kept = json.loads((record / "draw-21.json").read_text())
    del kept["runs"]["carve"]
    (record / "draw-21.json").write_text(json.dumps(kept))
    shutil.rmtree(out)
    def no_pretraining(argv):
        assert argv[0] != "pretrain", "pretrained again"
        return real_mmrt(argv)
    monkeypatch.setattr(paper_table, "mmrt", no_pretraining)
    monkeypatch.setattr(sys, "argv", argv)
    paper_table.main()
    assert json.loads((out / "table.json").read_text())["rows"].keys() == doc["rows"].keys()
    assert "carve" in json.loads((record / "draw-21.json").read_text())["runs"]
    # a recorded run made again beside the record (not kept), from the foundation the record keeps
    before = (record / "draw-21.json").read_text()
    again = ["table", "--out", str(tmp_path / "again"), "--draws", "21", "--size", "tiny", "--record",
             str(record), "--again", "carve"]
    monkeypatch.setattr(sys, "argv", again)
    paper_table.main()
    found = json.loads((tmp_path / "again" / "again.json").read_text())[0]
    methods = json.loads(before)["runs"]["carve"]["methods"]
    assert found["run"] == "carve" and found["figures"] == 8 * len(methods)  # P and R in 4 strata each
    assert found["largest"]["difference"] < 0.01 and (tmp_path / "again" / "draw-21" / "carve").is_dir()
    assert (record / "draw-21.json").read_text() == before
    monkeypatch.setattr(paper_table, "mmrt", lambda argv: pytest.fail(f"ran {argv}"))
    paper_table.main()  # done: what it found is kept, not made a third time
    assert json.loads((tmp_path / "again" / "again.json").read_text())[0] == found
    (tmp_path / "other" / "draw-21" / "carve").mkdir(parents=True)  # a run this call did not begin
    monkeypatch.setattr(sys, "argv", [*again[:2], str(tmp_path / "other"), *again[3:]])
    with pytest.raises(SystemExit, match="holds 'carve' or a foundation other than the record's"):
        paper_table.main()
    monkeypatch.setattr(sys, "argv", [*again[:-1], "labels"])
    with pytest.raises(SystemExit, match="--again labels: expected one of"):
        paper_table.main()
    # a recorded run is reused only with the flags it was made with
    changed = {**small, "main": dataclasses.replace(small["main"], methods="lp,ft")}
    monkeypatch.setattr(paper_table, "RUNS", changed)
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="run 'main' was made with"):
        paper_table.main()


@pytest.mark.parametrize("diffs,word", [([0.04, 0.03, 0.05], "reproduced"), ([0.06, -0.01, 0.05], "mixed"),
                                        ([-0.04, -0.03, -0.05], "contradicted"), (None, "not measured"),
                                        ([0.006, 0.004, 0.002], "too small to tell"),
                                        ([-0.015, 0.01, -0.02], "too small to tell")])
def test_a_claim_is_reproduced_only_when_every_draw_agrees(diffs, word):
    from lab.paper_table_report import verdict

    assert verdict(diffs).lstrip("*").startswith(word)
    assert "(one draw)" in verdict([0.05]) and "(one draw)" not in verdict([0.05, 0.04])


def test_choosing_mae_schedule_voids_only_the_mae_rows():
    small = paper_table.resources.files("mmrt.training") / "presets" / "small.json"
    preset = json.loads(small.read_text())
    mae_schedule, finetune = copy.deepcopy(preset), copy.deepcopy(preset)
    mae_schedule["recipe"]["pretrain_mae"]["epochs"] += 10
    mae_schedule["mae"]["mask_ratio"]["video"] = 0.75
    finetune["recipe"]["finetune"]["steps"] += 1
    digest = paper_table.preset_digest
    assert digest(mae_schedule, mae=False) == digest(preset, mae=False)
    assert digest(mae_schedule, mae=True) != digest(preset, mae=True)
    assert digest(finetune, mae=False) != digest(preset, mae=False)
    assert digest(finetune, mae=True) != digest(preset, mae=True)
    assert preset["recipe"]["pretrain_mae"] != mae_schedule["recipe"]["pretrain_mae"]  # the preset was copied


def test_a_foundation_is_reused_only_if_made_with_the_preset_pretraining_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(paper_table, "mmrt", lambda argv: pytest.fail(f"pretrained again: {argv}"))
    draw = paper_table.Draw(argparse.Namespace(out=tmp_path, record=None, size="small"), 5)
    preset = draw.preset()
    mae, contrastive = draw.root / "pretrained-mae", draw.root / "pretrained"

    def made(out, schedule, **stage):  # a config.json as pretraining writes it
        out.mkdir(parents=True, exist_ok=True)
        small = paper_table.load_preset("small")
        arch = (small.mae.encoder_arch(small.arch) if "mae" in stage else small.arch).to_dict()
        recorded = dataclasses.asdict(small.recipe["pretrain_mae" if "mae" in stage else "pretrain"])
        (out / "config.json").write_text(json.dumps({"arch": arch, "history": [
            {"schedule": {**recorded, **schedule}, **stage}]}))

    made(mae, preset["recipe"]["pretrain_mae"])
    stamp = mae / paper_table.MADE_WITH
    stamp.write_text(json.dumps({"pretraining_sha256": "0" * 16}))
    with pytest.raises(SystemExit, match="other settings than the preset"):
        draw.pretrain("pretrained-mae")
    stamp.write_text(json.dumps({"pretraining_sha256": paper_table.foundation_digest(preset, mae=True)}))
    draw.pretrain("pretrained-mae")  # reused
    stamp.unlink()  # made before stamps: what it records of itself decides
    with pytest.raises(SystemExit, match="other settings than the preset"):
        draw.pretrain("pretrained-mae")  # no MAE settings recorded
    made(mae, preset["recipe"]["pretrain_mae"], mae={**preset["mae"], "raw_targets": []})
    draw.pretrain("pretrained-mae")
    made(contrastive, preset["recipe"]["pretrain"])
    draw.pretrain("pretrained")
    made(contrastive, {**preset["recipe"]["pretrain"], "lr": 1.0})
    with pytest.raises(SystemExit, match="other settings than the preset"):
        draw.pretrain("pretrained")


def test_a_record_foundation_is_checked_and_not_replaced_under_the_parts_made_from_it(tmp_path, monkeypatch):
    monkeypatch.setattr(paper_table, "mmrt", lambda argv: pytest.fail(f"pretrained again: {argv}"))
    draw = paper_table.Draw(argparse.Namespace(out=tmp_path / "out", record=tmp_path,
                                               size="small"), 5)
    digest = paper_table.foundation_digest(draw.preset(), mae=True)
    out, kept = draw.root / "pretrained-mae", tmp_path / "draw-5" / "pretrained-mae"
    for folder, made_with in ((out, digest), (kept, "0" * 16)):  # the record's is stale, the run's is not
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / paper_table.MADE_WITH).write_text(json.dumps({"pretraining_sha256": made_with}))
    with pytest.raises(SystemExit, match=f"{kept}: pretrained with other settings"):
        draw.pretrain("pretrained-mae")
    (kept / paper_table.MADE_WITH).write_text(json.dumps({"pretraining_sha256": digest}))
    shutil.rmtree(out)  # the record's, current, is copied here with the parts made from it
    assert draw.pretrain("pretrained-mae", made_from_it=("mae",)) is False
    assert (out / paper_table.MADE_WITH).read_text() == (kept / paper_table.MADE_WITH).read_text()
    shutil.rmtree(out)
    shutil.rmtree(kept)  # neither here nor in the record: the kept parts were made from another one
    with pytest.raises(SystemExit, match="mae were made from a foundation that is neither"):
        draw.pretrain("pretrained-mae", made_from_it=("mae",))
    kept_parts = {"foundation": {}, "runs": {"main": {"spec": {"pretrained": "pretrained"}},
                                             "mae": {"spec": {"pretrained": "pretrained-mae"}}}}
    assert paper_table.made_from(kept_parts, "pretrained") == ("foundation", "main")
    assert paper_table.made_from(kept_parts, "pretrained-mae") == ("mae",)


def test_a_part_begins_only_with_the_code_the_run_began_with(monkeypatch):
    args = argparse.Namespace(out=Path("out"), record=None, size="small", began_at="abc", began_as="f1")
    draw = paper_table.Draw(args, 5)
    monkeypatch.setattr(paper_table, "fingerprint", lambda *written: "f1")
    started = []
    monkeypatch.setattr(paper_table.os, "execv", lambda exe, argv: started.append(argv))
    assert draw.same_code() == "abc" and started == []
    monkeypatch.setattr(paper_table, "fingerprint", lambda *written: "f2")  # an edit since it began
    monkeypatch.setattr(sys, "argv", ["lab/paper_table.py", "--out", "o", "--mae"])
    monkeypatch.setenv(paper_table.RESTARTS, "0")
    draw.same_code()
    assert started == [[sys.executable, "-m", "lab.paper_table", "--out", "o", "--mae"]]
    assert paper_table.os.environ[paper_table.RESTARTS] == "1"
    monkeypatch.setenv(paper_table.RESTARTS, str(paper_table.MAX_RESTARTS))  # restarted, still changing
    with pytest.raises(SystemExit, match="changed 3 times with no part made between"):
        draw.same_code()
    paper_table.made_here("abc", 0.0)  # a part made: the restarts before it count no more
    assert paper_table.os.environ[paper_table.RESTARTS] == "0"


def test_the_committed_table_was_made_with_the_shipped_preset():
    preset = json.loads((paper_table.resources.files("mmrt.training") / "presets" / "small.json").read_text())
    records = sorted((Path(__file__).parents[1] / "docs" / "results" / "paper-table").glob("draw-*.json"))
    assert len(records) >= 3
    table = (records[0].parent / "table.md").read_text()
    for record in records:
        for name, run in json.loads(record.read_text())["runs"].items():
            mae = run["spec"]["pretrained"] == "pretrained-mae"
            if run["made"].get("superseded"):  # kept until made again, stale by this preset alone
                assert run["made"]["superseded_by"] == paper_table.preset_digest(preset, mae)
                assert f"draw {record.stem[5:]}, {name}: **superseded**: " in table
                for label in (label for label, made_by, _ in paper_table.ROWS if made_by == name):
                    assert f"| {label} (**superseded**) | " in table  # each of its rows, where it stands
                    if label == "MAE: fine-tune":  # and in the claim read on it
                        assert "contrastive's 15.1; MAE: fine-tune (**superseded**)): " in table
                assert "**Superseded**" in table
                continue
            assert run["spec"]["preset_sha256"] == paper_table.preset_digest(preset, mae), (
                f"{record.name}: run {name} was made with another preset: run the table again")


def _doc(best: dict[str, dict], chance: float = 0.15, transfer: float = 0.16) -> dict:
    rows = {label: {"metrics": {"modalities": ["audio", "video"], "best_eval": b,
                                "transfer": {"P": transfer}}} for label, b in best.items()}
    return {"rows": dict.fromkeys(rows), "per_draw": {"1": {"rows": rows, "chance": chance}}}


@pytest.mark.parametrize("transfer,word", [(0.16, "at chance, testability unknown"),
                                           (0.10, "at chance, testability unknown"),
                                           (0.20, "contradicted (above")])
def test_mae_collapses_only_within_a_small_margin_above_chance(transfer, word):
    from lab.paper_table_mae import collapse

    every = {"audio": "audio", "video": "video", "audio+video": "audio+video"}
    doc = _doc({"MAE: fine-tune": every, "fine-tune": every}, chance=0.15, transfer=transfer)
    assert collapse(doc).replace("*", "").startswith(word)
    assert collapse(_doc({"fine-tune": every})) == "not measured (rows missing)"
    empty = _doc({"MAE: fine-tune": every, "fine-tune": every}, transfer=None)
    assert collapse(empty).startswith("not measured (no training set leaves a modality out")


def _scored(doc: dict, label: str, own: float) -> None:
    """Give a row of ``_doc`` (or contrastive's probe run) in-modality scores p(M; M) of ``own``."""
    scores = {mt: {mt: own} for mt in ("audio", "video", "audio+video")}
    draw = doc["per_draw"]["1"]
    if label == "probe":
        draw["probe"] = {"scores": scores}
    else:
        draw["rows"][label]["scores"] = scores


@pytest.mark.parametrize("mae_own,transfer,word", [(0.60, 0.16, "reproduced"),
                                                   (0.30, 0.16, "untestable here"),
                                                   (0.30, 0.20, "contradicted (above")])
def test_mae_collapse_is_testable_only_where_mae_learns_its_own_modalities(mae_own, transfer, word):
    from lab.paper_table_mae import collapse

    every = {"audio": "audio", "video": "video", "audio+video": "audio+video"}
    doc = _doc({"MAE: fine-tune": every, "fine-tune": every}, chance=0.15, transfer=transfer)
    _scored(doc, "MAE: fine-tune", mae_own)
    _scored(doc, "probe", 0.85)  # contrastive: 0.70 above chance; MAE must be at least 0.35 above
    verdict = collapse(doc).replace("*", "")
    assert verdict.startswith(word) and f"scores p(M; M) {mae_own - 0.15:+.3f} from chance" in verdict


@pytest.mark.parametrize("audio,always,sometimes", [
    ("audio+video", "reproduced", "contradicted"), ("audio", "not reproduced", "reproduced")])
def test_table_4_claims_count_training_sets_best_with_all_modalities(audio, always, sometimes):
    from lab.paper_table_report import always_all, best_eval, sometimes_subset

    best = {"audio": audio, "video": "audio+video", "audio+video": "audio+video"}
    subset = {"audio": "audio", "video": "audio+video", "audio+video": "audio+video"}
    doc = _doc({"fine-tune": best, "tuned": subset})
    assert always_all(doc, "fine-tune", "tuned").replace("*", "").startswith(always)
    assert sometimes_subset(doc, "fine-tune").replace("*", "").startswith(sometimes)
    assert f"| fine-tune | {'AV' if audio == 'audio+video' else 'A'} | AV |" in best_eval(doc)
    contrast = always_all(doc, "fine-tune", "fine-tune")  # against a row that is best with all as well
    assert ("with no contrast" in contrast) == (always == "reproduced")


@pytest.mark.parametrize("subset_score,counted", [(0.51, 1), (0.53, 0)])
def test_table_4_counts_all_modalities_as_best_within_the_noise_margin(subset_score, counted):
    from lab.paper_table_report import _with_all

    doc = _doc({"tuned": {"audio": "audio", "video": "audio+video"}})
    doc["per_draw"]["1"]["rows"]["tuned"]["scores"] = {
        "audio": {"audio": subset_score, "video": 0.2, "audio+video": 0.50},  # all is 0.01 or 0.03 below
        "video": {"audio": 0.3, "video": 0.4, "audio+video": 0.45},
        "audio+video": {"audio": 0.3, "video": 0.3, "audio+video": 0.6}}
    assert _with_all(doc, "tuned") == [(1 + counted, 2)]


@pytest.mark.parametrize("mae_own,word", [(0.30, "untestable here"), (0.60, "not reproduced")])
def test_mae_table_4_claims_are_untestable_where_mae_learns_too_little(mae_own, word):
    from lab.paper_table_report import table_4

    subset = {"audio": "audio", "video": "video", "audio+video": "audio+video"}
    doc = _doc({"MAE: MASD": subset, "MAE: fine-tune": subset, "fine-tune": subset})
    _scored(doc, "MAE: fine-tune", mae_own)
    _scored(doc, "probe", 0.85)  # contrastive: 0.70 above chance; MAE must be at least 0.35 above
    found = table_4(doc, "MAE: MASD", True, "fine-tune").replace("*", "")
    assert found.startswith(word) and "0 of 2 best with all" in found
    assert table_4(doc, "fine-tune", False, None).replace("*", "").startswith("reproduced")  # not MAE's


@pytest.mark.parametrize("drop,repair", [(-0.002, "no drop to repair"), (-0.05, "reproduced")])
def test_a_repair_claim_says_so_where_there_is_no_drop_to_repair(drop, repair):
    from lab.paper_table_report import DROP, difference_claims

    base, masd, headline = 0.70, 0.70 + drop, 0.70 + drop + 0.03
    cells = [f"{s}.{n}" for s in ("overall", "missing", "added", "transfer") for n in ("P", "R")]
    rows = {label: {cell: {"each": [v]} for cell in cells} for label, v in
            (("fine-tune", base), (DROP[0], masd), ("MASD+WiSE-FT (pretraining pool, 1x)", headline))}
    lines = difference_claims({"rows": rows, "per_draw": {}})
    found = [line for line in lines if "Missing at Test: against MASD" in line]
    assert len(found) == 1 and repair in found[0].replace("*", "")
    assert "+0.030 on average" in found[0]  # the repair's own difference is kept either way


def test_memorised_pairs_name_each_pair_held_out_more_than_the_margin_below():
    from lab.paper_table_cells import memorised_pairs

    def pairs(**retrieval):
        return {"pairs": {p.replace("_", "+"): {"retrieval": r} for p, r in retrieval.items()}}
    alignment = {"pretrain": pairs(audio_video=0.234, audio_text=0.19, video_text=0.16),
                 "held_out": pairs(audio_video=0.191, audio_text=0.201, video_text=0.145)}
    assert memorised_pairs(alignment) == [("audio+video", 0.234, 0.191)]  # 0.015 below is within the margin
    assert memorised_pairs({"pretrain": alignment["pretrain"]}) is None


def test_each_draw_shows_its_interval_and_a_fine_tune_below_its_probe_is_named_weak():
    from lab.paper_table_report import baselines, each_draw

    def row(p: float, low: float | None) -> dict:
        strata = {s: {"P": p, "R": p - 0.1} for s in ("overall", "missing", "added", "transfer")}
        ci = None if low is None else {"overall": {"P": {"low": low, "high": p + 0.01}}}
        return {"metrics": strata, "ci95": ci}
    draws = {"1": {"rows": {"linear probe": row(0.88, 0.87), "fine-tune": row(0.87, None)}},
             "2": {"rows": {"linear probe": row(0.89, 0.88), "fine-tune": row(0.86, None)}}}
    rows = {label: {f"{s}.P": {"each": [d["rows"][label]["metrics"][s]["P"] for d in draws.values()]}
                    for s in ("overall",)} for label in ("linear probe", "fine-tune")}
    doc = {"rows": rows, "per_draw": draws}
    table = "\n".join(each_draw(doc))
    assert "| linear probe | 0.880 [0.870, 0.890]<br>0.890 [0.880, 0.900] |" in table
    assert "| fine-tune | 0.870<br>0.860 |" in table  # no interval recorded: the figure alone
    weak = baselines(doc)
    assert len(weak) == 1
    assert weak[0].endswith("(each draw: -0.010, -0.030): below its probe on every draw: a weak baseline")


def test_the_committed_table_renders_with_the_code_that_renders_it_now():
    from lab.paper_table_report import render

    doc = json.loads(Path("docs/results/paper-table/table.json").read_text())
    page = render(doc)
    assert "## The paper's claims" in page and "## The best eval set per training set" in page
    assert f", at {doc['assembled_at'][:12]}" in page  # the commit it was assembled at, not a run's


def test_where_each_run_was_made_names_the_uncommitted_changes_and_keeps_the_notes():
    from lab.paper_table_report import made

    def at(commit: str, **note) -> dict:
        return {"date": "2026-12-07", "machine": "cpu", "commit": commit, "minutes": 1.0, **note}
    parts = {"main": at("a" * 40 + " (with uncommitted changes: lab/x.py; docs/y.md)"),
             "carve": at("b" * 40 + " (with uncommitted changes)", note="only docs"), "mae": at("c" * 40)}
    lines = made({"per_draw": {"5": {"made": parts}}})
    row = "| 5 | {} | 2026-12-07 | cpu | {} | 1.0 |"
    assert row.format("main", "a" * 12 + " (uncommitted changes: lab/x.py; docs/y.md)") in lines
    assert row.format("carve", "b" * 12 + " (uncommitted changes, not named)") in lines
    assert row.format("mae", "c" * 12) in lines
    assert lines[-1] == "- draw 5, carve: only docs"
    assert paper_table_report.superseded({"per_draw": {"5": {"made": parts}}}) == ""
    parts["mae"]["superseded"] = "made with 10 epochs; the preset now has 80"
    doc = {"per_draw": {"5": {"made": parts}}}
    assert made(doc)[-1] == "- draw 5, mae: **superseded**: made with 10 epochs; the preset now has 80"
    assert "**Superseded**: mae (and the rows made from them)" in paper_table_report.superseded(doc)


def test_a_record_part_made_with_another_preset_is_refused_unless_marked_superseded(tmp_path):
    args = argparse.Namespace(out=tmp_path / "out", record=tmp_path / "record", size="small")
    draw = paper_table.Draw(args, 5)
    spec = draw.spec("mae", paper_table.RUNS["mae"])
    run = {"spec": {**spec, "preset_sha256": "0" * 16}, "made": {}, "methods": {}}
    args.record.mkdir()
    draw.record.write_text(json.dumps({"settings": draw.settings, "runs": {"mae": run}}))
    with pytest.raises(SystemExit, match="run 'mae' was made with"):
        draw.kept()
    run["made"].update(superseded="made with the old schedule", superseded_by="1" * 16)
    draw.record.write_text(json.dumps({"settings": draw.settings, "runs": {"mae": run}}))
    with pytest.raises(SystemExit, match="run 'mae' was made with"):  # marked for another preset
        draw.kept()
    run["made"]["superseded_by"] = spec["preset_sha256"]
    draw.record.write_text(json.dumps({"settings": draw.settings, "runs": {"mae": run}}))
    kept = draw.kept()
    assert kept["runs"]["mae"]["made"]["superseded"] == "made with the old schedule"
    with pytest.raises(SystemExit, match="run 'mae' is superseded"):
        draw.again("mae")  # nothing the preset now makes to set beside it
    other = {**run, "spec": {**run["spec"], "flags": ["--methods", "lp"]}}  # it excuses the preset alone
    draw.record.write_text(json.dumps({"settings": draw.settings, "runs": {"mae": other}}))
    with pytest.raises(SystemExit, match="run 'mae' was made with"):
        draw.kept()
    # the MAE foundation's entry: its own digest, or excused by the mark on the run made from it
    foundation = {"losses": {}, "alignment": {}, "made": {}}
    kept["foundation_mae"] = foundation
    assert draw.mae_foundation(kept) is foundation  # no digest: made before they were kept, marked
    del kept["runs"]["mae"]["made"]["superseded_by"]
    with pytest.raises(SystemExit, match="foundation_mae was made with other pretraining settings"):
        draw.mae_foundation(kept)
    foundation["pretraining_sha256"] = paper_table.foundation_digest(draw.preset(), mae=True)
    assert draw.mae_foundation(kept) is foundation


def test_the_targets_say_how_far_the_specialists_are_above_fine_tuning_and_which_rows_pass_them():
    from lab.paper_table_report import headroom

    def metrics(r: float, oracle: float | None = None) -> dict:
        strata = {s: {"P": r, "R": r} for s in ("overall", "missing", "added", "transfer")}
        return {"metrics": {**strata, **({"oracle": {s: {"R": oracle} for s in strata}} if oracle else {})}}
    draws = {"1": {"rows": {"fine-tune": metrics(0.70, 0.72), "a": metrics(0.73), "b": metrics(0.73)}},
             "2": {"rows": {"fine-tune": metrics(0.74, 0.75), "a": metrics(0.76), "b": metrics(0.74)}}}
    lines = headroom({"rows": {"fine-tune": {}, "a": {}, "b": {}}, "per_draw": draws})
    assert len(lines) == 2 and "are +0.020, +0.010 above it by draw" in lines[0]
    assert lines[0].endswith("above them on every draw: a")  # b is below the specialists on draw 2
    draws["1"]["rows"]["fine-tune"]["metrics"]["transfer"]["R"] = None  # an empty stratum: not stated
    lines = headroom({"rows": {}, "per_draw": draws})
    assert len(lines) == 1 and "the room above fine-tuning, Overall R" in lines[0]
    del draws["2"]["rows"]["fine-tune"]["metrics"]["oracle"]
    assert headroom({"rows": {}, "per_draw": draws}) == []  # no specialists recorded: nothing said


def test_a_run_made_again_counts_its_equal_figures_and_names_the_largest_difference():
    from lab.paper_table_again import compare, line

    def run(p: float, r: float | None) -> dict:
        return {"metrics": {s: {"P": p, "R": r} for s in ("overall", "missing", "added", "transfer")}}
    found = compare({"ft": run(0.5, 0.4), "lp": run(0.3, None)}, {"ft": run(0.5, 0.4), "lp": run(0.31, 0.2)})
    assert found["figures"] == 12 and found["equal"] == 8  # lp's R is not measured in the record
    assert found["largest"]["where"].startswith("lp ") and found["largest"]["where"].endswith(" P")
    assert found["largest"]["difference"] == pytest.approx(0.01)
    assert line(7, "main", found).startswith("draw 7, main made again: 12 figures, 8 equal to the record's")


def test_the_figures_mean_over_draws_is_absent_where_any_draw_is():
    from lab.paper_table_report import _mean_tree

    trees = [{"a": {"P": 0.5, "R": None}, "n": "x"}, {"a": {"P": 0.7, "R": 0.4}, "n": "x"}]
    assert _mean_tree(trees) == {"a": {"P": pytest.approx(0.6), "R": None}, "n": "x"}
