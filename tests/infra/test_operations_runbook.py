"""docs/operations.md has an entry for every alarm of the template: meaning, confirm, fix, commands."""

from __future__ import annotations

import re

from snapcdc.config import load_config

from .synthesis import REPO_ROOT, Synth

RUNBOOK = REPO_ROOT / "docs" / "operations.md"
PER_TABLE = "<Table>"


def _entries() -> dict[str, str]:
    """'### <name>' heading -> the text of its section."""
    text = RUNBOOK.read_text(encoding="utf-8")
    parts = re.split(r"^### (.+)$", text, flags=re.MULTILINE)
    return {name.replace("\\", "").strip(): body for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def _alarm_entry_name(logical_id: str, titles: list[str]) -> str:
    """ObservabilityClientesQuarantined18161737 -> <Table>Quarantined; ObservabilityStale2C178746 -> Stale."""
    name = re.sub(r"^Observability|[0-9A-F]{8}$", "", logical_id)
    for title in sorted(titles, key=len, reverse=True):
        if name.startswith(title):
            return PER_TABLE + name[len(title) :]
    return name


def _alarms(synth: Synth) -> dict[str, dict]:  # type: ignore[type-arg]
    titles = ["".join(p.capitalize() for p in t.split("_")) for t in load_config().table_names]
    return {_alarm_entry_name(k, titles): v for k, v in synth.resources("AWS::CloudWatch::Alarm").items()}


def test_every_alarm_of_the_template_has_a_runbook_entry(synth: Synth) -> None:
    # Given the alarms of the synthesized stack, per-table ones under one <Table> name
    alarms = _alarms(synth)
    # Then the runbook has an entry for each, and no entry for an alarm that does not exist
    assert len(synth.resources("AWS::CloudWatch::Alarm")) >= 9
    assert set(alarms) == set(_entries())


def test_each_entry_says_what_it_means_how_to_confirm_and_how_to_fix(synth: Synth) -> None:
    # Given each alarm's runbook entry
    entries = _entries()
    for name, alarm in _alarms(synth).items():
        entry = entries[name]
        # Then it has the three parts and at least one command block
        for part in ("**Meaning**", "**Confirm**", "**Fix**"):
            assert part in entry, (name, part)
        assert "```bash" in entry or "`aws " in entry or "`snapcdc " in entry, name
        # And it names the metric the alarm reads (math alarms: every metric of the expression)
        properties = alarm["Properties"]
        metrics = (
            [properties["MetricName"]]
            if "MetricName" in properties
            else [m["MetricStat"]["Metric"]["MetricName"] for m in properties["Metrics"] if "MetricStat" in m]
        )
        for metric in metrics:
            assert f"`{metric}`" in entry, (name, metric)


def test_the_fix_commands_use_what_the_stack_outputs(synth: Synth) -> None:
    # Given the outputs the runbook's shell set-up reads
    text = RUNBOOK.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\(out (\w+)\)", text))
    # Then each is an output of the stack
    assert used
    assert used <= set(synth.template["Outputs"])
