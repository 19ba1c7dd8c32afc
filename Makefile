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

# The demo: the vision app's ViT trained from scratch on scikit-learn's 8x8 digits (embedded: no download; 20 of
# the config's 40 epochs: 6.3 CPU-minutes in all, about 3 minutes on 2 idle cores; test acc 0.978), its attention
# drawn (attnlab explain), then its best checkpoint evaluated: the output ends with the test metrics and where the
# pictures are. Everything lands in $(DEMO_ROOT)/.
DEMO_CONFIG := configs/vision/digits.yaml
DEMO_ROOT := runs/demo
DEMO_ARGS := --config $(DEMO_CONFIG) --trainer.default_root_dir $(DEMO_ROOT) --trainer.max_epochs 20
demo: $(STAMP)
	$(VENV)/bin/attnlab fit $(DEMO_ARGS)
	$(VENV)/bin/attnlab explain $(DEMO_ARGS) --ckpt_path best --out $(DEMO_ROOT)/figures
	$(VENV)/bin/attnlab test $(DEMO_ARGS) --ckpt_path best
	@echo "attention pictures: $(DEMO_ROOT)/figures/vision_rollout.png (attention rollout per image), $(DEMO_ROOT)/figures/vision_positions.png"

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
