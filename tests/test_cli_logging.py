"""The command line's log lines name the command that wrote them."""

import logging

from mmrt.cli.entry import log_as


def test_each_command_in_one_process_logs_under_its_own_name(monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    log_as("mmrt data make")
    log_as("mmrt pretrain")
    handler, = root.handlers
    assert handler.format(logging.makeLogRecord({"msg": "step 1"})) == "mmrt pretrain: step 1"
