# Developer tasks. `make lock` refreshes constraints.txt, the versions CI and the README install.

SHELL := bash

# The lock covers the core dependencies plus these extras (one consistent set of versions).
# Add an extra here when CI starts installing it (e.g. mysql s3 http), then run `make lock`.
LOCK_EXTRAS := dev ray mysql http
# PyTorch is not in the lock: the README and .ci/run install `torch==$(TORCH)` first, which takes
# the CPU build. The lock is resolved against that CPU wheel, so no CUDA/nvidia package is pinned.
TORCH := 2.13.0
# Where uv finds the torch $(TORCH)+cpu wheel (a folder or an HTML page of wheel links).
TORCH_FIND_LINKS := /opt/wheels
PYTHON_VERSION := 3.11
UV := uv

.PHONY: lock lock-upgrade ci smoke

# Add pins for new dependencies, keep every existing pin that still fits (uv reads the current
# constraints.txt as its preferences).
lock:
	tmp=$$(mktemp) && trap 'rm -f $$tmp' EXIT && echo "torch==$(TORCH)+cpu" > $$tmp && \
	$(UV) pip compile pyproject.toml $(addprefix --extra ,$(LOCK_EXTRAS)) \
	  --python-version $(PYTHON_VERSION) --find-links $(TORCH_FIND_LINKS) -c $$tmp \
	  --no-emit-package torch --no-emit-find-links --custom-compile-command "make lock" \
	  $(UV_FLAGS) -o constraints.txt

# The scheduled-by-hand refresh: newest versions of everything, then run `.ci/run` before committing.
lock-upgrade:
	$(MAKE) lock UV_FLAGS=--upgrade

ci:
	.ci/run

smoke:
	.ci/smoke.sh
