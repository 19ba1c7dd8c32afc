# attnlab developer entry points. Everything runs inside $(VENV), built from pyproject.toml.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint check-real bench clean

venv: $(STAMP)

# Reinstall only when pyproject.toml changes (the stamp is newer otherwise).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	touch $@

# Train the demo app, then evaluate its best checkpoint; the output ends with the test metrics.
demo: $(STAMP)
	$(VENV)/bin/attnlab fit --config configs/demo/majority.yaml
	$(VENV)/bin/attnlab test --config configs/demo/majority.yaml --ckpt_path best

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# pytest exits 5 when nothing is marked `real` yet; that is not a failure here.
check-real: $(STAMP)
	$(PY) -m pytest -q --run-real -m real || { rc=$$?; [ $$rc -eq 5 ] && echo "no tests marked real"; }

bench: $(STAMP)
	$(PY) benchmarks/attention.py

clean:
	rm -rf runs lightning_logs .pytest_cache .ruff_cache
