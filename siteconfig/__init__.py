"""Reading the files people edit (the switch's config, scenarios, the service-level
policy): YAML that remembers where each key was written, durations and working days.

Neutral ground: it imports no other hotline package, so the routing core's settings,
records and scenarios can all use it (tests/test_layering.py holds the rules).
"""
