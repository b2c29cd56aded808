# The README's two commands: `make demo` and `make test`. Each builds what it needs from scratch
# (virtual environments under .venv/, rebuilt when pyproject.toml changes) and then runs.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
PIP_FLAGS ?= -q --disable-pip-version-check
PYTEST_ARGS ?=

# Three stacks users have: the last Estimator release (TF 2.15, numpy 1.26), the current one
# (TF 2.21, Keras 3, numpy 2.x), and none at all (the offline exporter needs no TensorFlow).
ENVS := tf215 tf221 core
EXTRAS_tf215 := estimator,fast,fpng,dev
EXTRAS_tf221 := keras,fast,fpng,dev
EXTRAS_core := fast,fpng,dev

.PHONY: demo test lint envs bench browser clean $(addprefix test-,$(ENVS))

demo: .venv/tf215/.ready
	.venv/tf215/bin/summary-exporter demo demo_out

test: lint browser $(addprefix test-,$(ENVS))
	@echo "all test environments passed: $(ENVS)"

# The linter and the type checker (versions pinned in the dev extra, rules in pyproject.toml).
lint: .venv/core/.ready
	.venv/core/bin/ruff check exporter tests
	.venv/core/bin/mypy

$(addprefix test-,$(ENVS)): test-%: .venv/%/.ready browser
	@echo "=== tests in .venv/$* ==="
	SUMMARY_EXPORTER_TEST_ENV=$* .venv/$*/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

.PRECIOUS: .venv/%/.ready

envs: $(addprefix .venv/,$(addsuffix /.ready,$(ENVS)))

.venv/%/.ready: pyproject.toml
	rm -rf .venv/$*
	$(PYTHON) -m venv .venv/$*
	.venv/$*/bin/pip install $(PIP_FLAGS) -e ".[$(EXTRAS_$*)]"
	touch $@

# Headless Chromium for the TensorBoard dashboard screenshot test (Debian's package; root + apt-get needed).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium not installed, the browser screenshot test will be skipped"; fi; }

bench: .venv/tf215/.ready
	mkdir -p bench_out && .venv/tf215/bin/summary-exporter bench --json bench_out/bench.json

clean:
	rm -rf .venv demo_out
