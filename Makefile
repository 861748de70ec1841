# The two commands the README opens with: `make demo` and `make test`.
# Everything else here is what they need.

VENV    := .venv
PY      := $(VENV)/bin/python
HOTLINE := $(VENV)/bin/hotline
DEMO_DB ?= demo.db

# pjsua2-python has wheels for CPython 3.8-3.12 only; the project needs 3.11 or 3.12.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not ((3,11) <= sys.version_info[:2] <= (3,12)))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: demo test venv native bench clean

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
		echo "hotline needs Python 3.11 or 3.12 (pjsua2-python has no wheels for other versions)."; \
		echo "Install python3.11 (Debian: apt-get install python3.11 python3.11-venv) and run make again."; \
		exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

# The routing core and simulator compiled with mypyc into build/native (see
# telephony/native.py): rebuilt whenever their source changes. If compiling fails
# everything still works, interpreted and ~5x slower; the stamp is then not written.
NATIVE_SOURCES := telephony/acd/config.py telephony/acd/events.py telephony/acd/core.py \
                  telephony/acd/stats.py scenarios/simulator.py telephony/native.py
$(VENV)/.native: $(VENV)/.installed $(NATIVE_SOURCES)
	@$(PY) -m telephony.native build >/dev/null 2>build-native.log && touch $@ \
		|| echo "warning: could not compile the routing core (build-native.log); it runs interpreted"
	@$(PY) -m telephony.native status

native: $(VENV)/.native

# The demo database (seeded the first time; `make demo FRESH=1` seeds it again, wiping the
# last runs), then the switch, bot agents, simulated callers and the seat of extension
# 1001 in this terminal (q ends it all).
demo: native
	$(HOTLINE) --db $(DEMO_DB) demo $(if $(FRESH),--fresh)

# mypy first (the whole package, config in pyproject.toml): a type error fails fast.
test: native
	$(PY) -m mypy
	$(PY) -m pytest

bench: native
	$(PY) bench/records.py
	$(PY) bench/simulator.py
	$(PY) bench/switch.py
	$(PY) bench/seat.py
	$(PY) bench/report.py
	$(PY) bench/supervisor.py

clean:
	rm -rf $(VENV) build build-native.log *.egg-info .pytest_cache .mypy_cache $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm \
		$(DEMO_DB:.db=.pins) $(DEMO_DB:.db=.queue_log) $(DEMO_DB:.db=.switch.log) $(DEMO_DB:.db=.sock) \
		$(DEMO_DB:.db=.media) $(DEMO_DB:.db=.seat) $(DEMO_DB:.db=.feed.log) $(DEMO_DB:.db=.bots.log) $(DEMO_DB:.db=.switch.yaml) \
		$(DEMO_DB:.db=.switch.lock)
