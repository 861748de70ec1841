import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from records.sla import load_policy
from siteconfig.durations import WorkingDays, parse_duration
from siteconfig.yamlsource import ConfigError, load_text
from records.sla import policy_from_document, default_policy_text

HK = ZoneInfo("Asia/Hong_Kong")


def at(*args, tz=HK):
    return dt.datetime(*args, tzinfo=tz).timestamp()


def local(ts, tz=HK):
    return dt.datetime.fromtimestamp(ts, tz).replace(tzinfo=None)


def test_defaults_are_the_service_standards(policy):
    opened = at(2026, 11, 23, 10, 0)  # a Monday
    urgent = policy.deadlines("urgent_repair", opened)
    assert urgent["dispatch_due"] - opened == 3 * 60
    assert urgent["on_site_due"] - opened == 15 * 60
    assert urgent["resolve_due"] - opened == 6 * 3600
    repair = policy.deadlines("repair", opened)
    assert repair["on_site_due"] - opened == 3600
    assert repair["resolve_due"] - opened == 24 * 3600
    assert policy.callback_due("repair", opened) - opened == 48 * 3600
    complaint = policy.deadlines("complaint", opened)
    assert complaint["feedback_due"] - opened == 48 * 3600
    assert local(complaint["reply_due"]) == dt.datetime(2026, 11, 27, 10, 0)  # Friday
    assert complaint["on_site_due"] is None and policy.callback_due("complaint", opened) is None
    assert policy.rule("billing").department == "finance"
    assert policy.max_postponements == 1 and policy.max_promise == 7 * 86400


def test_calendar_durations_run_across_midnight(policy):
    opened = at(2026, 11, 20, 23, 50)  # Friday night
    urgent = policy.deadlines("urgent_repair", opened)
    assert local(urgent["dispatch_due"]) == dt.datetime(2026, 11, 20, 23, 53)
    assert local(urgent["on_site_due"]) == dt.datetime(2026, 11, 21, 0, 5)
    assert local(urgent["resolve_due"]) == dt.datetime(2026, 11, 21, 5, 50)


def test_working_days_skip_the_weekend(policy):
    # Friday 17:00 + 4 working days = Thursday 17:00 (Mon, Tue, Wed, Thu).
    due = policy.add_working_days(at(2026, 11, 20, 17, 0), 4)
    assert local(due) == dt.datetime(2026, 11, 26, 17, 0)


def test_working_days_from_a_saturday_start_on_monday_morning(policy):
    due = policy.add_working_days(at(2026, 11, 21, 10, 0), 4)
    assert local(due) == dt.datetime(2026, 11, 27, 0, 0)  # four full days Mon-Thu


def test_working_days_skip_holidays(policy):
    # Thursday 24 Dec; 25 and 26 Dec are holidays, 27 is Sunday.
    due = policy.add_working_days(at(2026, 12, 24, 10, 0), 4)
    assert local(due) == dt.datetime(2026, 12, 31, 10, 0)
    # Starting on a holiday counts from the next working morning.
    due = policy.add_working_days(at(2026, 12, 25, 15, 0), 1)
    assert local(due) == dt.datetime(2026, 12, 29, 0, 0)


def test_working_days_just_before_midnight(policy):
    due = policy.add_working_days(at(2026, 11, 23, 23, 59), 1)
    assert local(due) == dt.datetime(2026, 11, 24, 23, 59)


def test_working_days_keep_wall_clock_time_across_daylight_saving():
    text = default_policy_text().replace("timezone: Asia/Hong_Kong", "timezone: Europe/London")
    london = policy_from_document(load_text(text, "london.yaml"))
    tz = ZoneInfo("Europe/London")
    opened = at(2026, 10, 23, 15, 0, tz=tz)  # Friday, BST; clocks go back on Sunday 25th
    due = london.add_working_days(opened, 1)
    assert local(due, tz) == dt.datetime(2026, 10, 26, 15, 0)
    assert due - opened == 3 * 86400 + 3600


@pytest.mark.parametrize("text,expected", [
    ("90s", 90), ("15m", 900), ("15 min", 900), ("6h", 21600), ("2d", 172800), ("1.5h", 5400),
    ("4 working days", WorkingDays(4)), ("1 working day", WorkingDays(1)), ("3wd", WorkingDays(3)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["15", 15, "fifteen minutes", "", None, "4 days working"])
def test_parse_duration_refuses(bad):
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


def _error_for(tmp_path, text):
    path = tmp_path / "sla.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    return info.value, str(path)


def test_bad_yaml_names_file_line_and_key(tmp_path):
    text = default_policy_text().replace("    on_site_within: 1h\n", "    on_site_within: 1 hour\n")
    error, path = _error_for(tmp_path, text)
    line = text.splitlines().index("    on_site_within: 1 hour") + 1
    assert error.source == path and error.line == line
    assert error.key == "types.repair.on_site_within"
    assert str(error).startswith(f"{path}:{line}: types.repair.on_site_within: expected a duration")


def test_unknown_keys_are_errors(tmp_path):
    text = default_policy_text().replace("dispatch_within: 3m", "dispatch_within: 3m\ndispach_within: 4m")
    error, _ = _error_for(tmp_path, text)
    assert error.key == "dispach_within" and "unknown key" in error.message
    assert error.line == text.splitlines().index("dispach_within: 4m") + 1


def test_other_policy_errors(tmp_path):
    cases = {
        "timezone: Asia/Hong_Kong": ("timezone: Mars/Olympus", "timezone", "unknown time zone"),
        "  - 2026-01-01": ("  - 2026-13-01", "holidays[0]", "expected a date"),
        "    department: finance": ("    department: accounts", "types.billing.department", "unknown department"),
        "working_week: [mon, tue, wed, thu, fri]": ("working_week: [mon, tue, funday]", "working_week[2]", "day name"),
        "max_postponements: 1": ("max_postponements: -1", "max_postponements", "whole number"),
    }
    for old, (new, key, message) in cases.items():
        error, _ = _error_for(tmp_path, default_policy_text().replace(old, new))
        assert error.key == key and message in error.message, (new, str(error))


def test_missing_type_and_syntax_errors(tmp_path):
    text = default_policy_text()
    start = text.index("  enquiry:")
    error, _ = _error_for(tmp_path, text[:start] + text[text.index("  billing:"):])
    assert error.key == "types" and "missing required key 'enquiry'" in error.message
    error, _ = _error_for(tmp_path, "timezone: Asia/Hong_Kong\ntypes: [unclosed\n")
    assert error.line == 3 and "not valid YAML" in error.message
    error, _ = _error_for(tmp_path, "timezone: x\ntimezone: y\n")
    assert error.line == 2 and error.message == "duplicate key"


def test_missing_policy_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_policy(tmp_path / "nope.yaml")


def test_base_60_numbers_stay_text():
    from siteconfig.yamlsource import load_text
    assert load_text("a: 09:30\nb: 1:20:30.5\nc: 570\n", "x").data == {"a": "09:30", "b": "1:20:30.5", "c": 570}
