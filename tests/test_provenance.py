"""Where a measurement came from: a run's own record folder does not mark its commit as changed;
any other change does, and a folder outside the checkout is no exemption."""

import subprocess

from lab import provenance


def repo(tmp_path, monkeypatch):
    root = tmp_path / "checkout"
    (root / "record").mkdir(parents=True)
    (root / "code.py").write_text("x = 1\n")
    (root / "record" / "draw.json").write_text("{}\n")
    run = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*run[:3], "init", "-q"], check=True)
    subprocess.run([*run, "add", "."], check=True)
    subprocess.run([*run, "commit", "-qm", "start"], check=True)
    monkeypatch.setattr(provenance, "CHECKOUT", root.resolve())
    return root


def test_the_record_folder_being_written_does_not_mark_the_commit(tmp_path, monkeypatch):
    root = repo(tmp_path, monkeypatch)
    head = provenance.git("rev-parse", "HEAD")
    (root / "record" / "draw.json").write_text('{"runs": 1}\n')
    (root / "record" / "new.json").write_text("{}\n")
    assert provenance.commit(ignoring=root / "record") == head
    assert provenance.commit() == head + " (with uncommitted changes: record/draw.json; record/new.json)"


def test_any_other_change_marks_it(tmp_path, monkeypatch):
    root = repo(tmp_path, monkeypatch)
    (root / "code.py").write_text("x = 2\n")
    assert provenance.commit(ignoring=root / "record").endswith(" (with uncommitted changes: code.py)")
    assert provenance.commit(ignoring=tmp_path / "elsewhere").endswith(" (with uncommitted changes: code.py)")
    for i in range(provenance.NAMED + 2):
        (root / f"new-{i}.py").write_text("")
    assert provenance.commit().endswith("new-6.py; and 3 more)")  # code.py and new-0 to new-6 named


def test_the_root_and_pattern_characters_exempt_nothing_else(tmp_path, monkeypatch):
    root = repo(tmp_path, monkeypatch)
    (root / "code.py").write_text("x = 2\n")
    assert provenance.commit(ignoring=root).endswith(" (with uncommitted changes: code.py)")
    (root / "code.py").write_text("x = 1\n")
    (root / "record" / "draw.json").write_text('{"runs": 2}\n')
    assert provenance.commit(ignoring=root / "rec*").endswith(" (with uncommitted changes: record/draw.json)")


def test_a_lab_command_is_quoted_as_a_shell_takes_it(monkeypatch):
    monkeypatch.setattr("sys.argv", ["/x/lab/paper_table.py", "--out", "my runs", "--draws", "1001,1002"])
    want = "python -m lab.paper_table --out 'my runs' --draws 1001,1002"
    assert provenance.command("lab.paper_table") == want


def test_the_fingerprint_follows_every_edit_to_code_but_not_the_run_own_folders(tmp_path, monkeypatch):
    root = repo(tmp_path, monkeypatch)
    start = provenance.fingerprint(root / "record")
    (root / "record" / "draw.json").write_text('{"runs": 1}\n')
    (root / "record" / "new.json").write_text("{}\n")  # untracked, but the run's own
    (root / "notes.md").write_text("a doc, not code\n")
    assert provenance.fingerprint(root / "record") == start
    (root / "code.py").write_text("x = 2\n")
    once = provenance.fingerprint(root / "record")
    (root / "code.py").write_text("x = 3\n")  # a second edit: the commit's words stay the same
    twice = provenance.fingerprint(root / "record")
    (root / "new.py").write_text("a = 1\n")
    untracked = provenance.fingerprint(root / "record")
    (root / "new.py").write_text("a = 2\n")  # edited again while untracked
    assert len({start, once, twice, untracked, provenance.fingerprint(root / "record")}) == 5
