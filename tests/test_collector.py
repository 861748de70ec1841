"""telephony/collector.py: the switch's full garbage collections, in virtual time, and
the config's `memory:` section."""

from __future__ import annotations

import gc
import logging

import pytest

from siteconfig.yamlsource import ConfigError, load_text
from telephony.collector import NEVER, CollectorSettings, FullCollections, c_allocator_trim, full_collection_due
from telephony.switchconfig import config_from_document

SETTINGS = CollectorSettings(full_every_s=900, quiet_after_s=60, quiet_calls=10)


def test_a_full_collection_waits_for_a_quiet_moment_or_its_longest_interval():
    assert not full_collection_due(SETTINGS, since_last_s=30, calls_up=0)       # quiet, but too soon
    assert full_collection_due(SETTINGS, since_last_s=60, calls_up=10)          # quiet enough
    assert not full_collection_due(SETTINGS, since_last_s=600, calls_up=11)     # busy: waits
    assert full_collection_due(SETTINGS, since_last_s=900, calls_up=2000)       # busy for 15 min: runs anyway


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_collections_run_when_due_over_a_day_of_virtual_time(caplog):
    clock, calls, ran = Clock(), [0], []
    collections = FullCollections(SETTINGS, lambda: calls[0], clock=clock, collect=lambda: ran.append(clock.now) or 7)
    collections.last = clock.now
    # a busy hour (800 calls up), ticked every second: one collection every 15 minutes
    calls[0] = 800
    for _ in range(3600):
        clock.now += 1
        collections.tick()
    assert [t - 1000 for t in ran] == [900, 1800, 2700, 3600]
    # then the evening lull (3 calls up): a minute after the last one, and every minute
    ran.clear()
    calls[0] = 3
    for _ in range(300):
        clock.now += 1
        collections.tick()
    assert [t - 4600 for t in ran] == [60, 120, 180, 240, 300]
    assert collections.count == 9


def test_a_slow_full_collection_is_logged_with_the_calls_up(caplog):
    clock = Clock()
    slow = CollectorSettings(full_every_s=10, quiet_after_s=5, quiet_calls=0, slow_s=0.0)
    collections = FullCollections(slow, lambda: 42, clock=clock, collect=lambda: 5)
    clock.now += 10
    with caplog.at_level(logging.INFO, logger="hotline.switch"):
        assert collections.tick() is True
    assert "full garbage collection" in caplog.text and "42 call(s) up, 5 object(s) freed" in caplog.text


def test_while_a_switch_runs_python_makes_no_full_collection_of_its_own_and_gets_its_collector_back():
    before = gc.get_threshold()
    first = FullCollections(SETTINGS, lambda: 0)
    second = FullCollections(SETTINGS, lambda: 0)   # tests run several switches in one process
    first.start()
    second.start()
    try:
        assert gc.get_threshold() == (before[0], before[1], NEVER)
        full_before = gc.get_stats()[2]["collections"]
        young_before = gc.get_stats()[0]["collections"]
        kept = []
        for i in range(300_000):   # long-lived objects, as a switch's calls and transactions are
            kept.append([i])
        assert gc.get_stats()[0]["collections"] > young_before   # young collections go on
        assert gc.get_stats()[2]["collections"] == full_before   # no full one
        first.stop()   # not in the order they started
        assert gc.get_threshold() == (before[0], before[1], NEVER)
    finally:
        first.stop()
        second.stop()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_allocator_is_trimmed_every_minute_and_after_each_full_collection():
    clock, calls, trimmed = Clock(), [800], []
    collections = FullCollections(CollectorSettings(full_every_s=150, quiet_after_s=60, quiet_calls=10,
                                                    trim_every_s=60), lambda: calls[0], clock=clock,
                                  collect=lambda: 0, trim=lambda: trimmed.append(clock.now - 1000))
    for _ in range(300):
        clock.now += 1
        collections.tick()
    # every 60 s from the last trim; the full collection at 150 brings one forward
    assert trimmed == [60, 120, 150, 210, 270, 300]
    assert collections.trims == 6 and collections.count == 2
    never = FullCollections(CollectorSettings(trim_every_s=0), lambda: 0, clock=clock, collect=lambda: 0,
                            trim=lambda: trimmed.append("never"))
    for _ in range(120):
        clock.now += 1
        never.tick()
    assert "never" not in trimmed and never.count == 2   # collections, quiet: at 60 and 120


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(c_allocator_trim() is None, reason="the C library has no malloc_trim (not glibc)")
def test_the_trim_hands_freed_memory_back_to_the_system():
    # 60 MB in 1 kB chunks (above pymalloc's 512 bytes: the C allocator's), every 64th
    # kept so none of the freed memory is at the heap's top where free() alone returns it
    chunks = [bytes(1000) + i.to_bytes(4, "little") for i in range(60_000)]
    kept = chunks[::64]
    del chunks
    before = resident_mb()
    c_allocator_trim()()
    after = resident_mb()
    assert len(kept) == 938
    assert before - after > 30, (before, after)


def test_the_memory_section_of_the_config():
    config = config_from_document(load_text("memory:\n  full_every_s: 300\n  quiet_calls: 0\n  trim_every_s: 0\n",
                                            "switch.yaml"))
    assert config.memory == CollectorSettings(full_every_s=300, quiet_calls=0, trim_every_s=0)
    assert config_from_document(load_text("unlisted: general\n", "switch.yaml")).memory == CollectorSettings()
    for text, key in (("memory:\n  full_every_s: 0\n", "full_every_s"), ("memory:\n  quiet_calls: -1\n", "quiet_calls"),
                      ("memory:\n  every: 5\n", "every")):
        with pytest.raises(ConfigError) as error:
            config_from_document(load_text(text, "switch.yaml"))
        assert key in str(error.value)
