# Two entry points (see README): `make lab` and `make test`. Both set up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install -q -c constraints.txt
# Debian packages: headless GL for MuJoCo (EGL, OSMesa), ffmpeg for mp4, chromium for browser tests.
DEB_PACKAGES := ffmpeg libegl1 libopengl0 libgl1-mesa-dri libosmesa6 chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system venv lab demo test book clean

setup: system venv

system:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e ".[notebooks,test,book]"
	@touch $@

LAB_FLAGS := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

lab: setup
	$(BIN)/jupyter lab notebooks/00_tour.ipynb $(LAB_FLAGS)

demo: setup
	$(BIN)/mbdpo-lab train --task cartpole-swingup --preset cpu --steps 3000 --seed 1 --out runs/demo \
	  --set eval_every=3000 --set eval_episodes=2
	@echo "video: runs/demo/videos/  metrics: runs/demo/metrics.csv"

test: setup
	$(BIN)/python -m pytest -q

# The course book: every lesson executed in fast mode, as a static site (runs/book/html/index.html).
book: setup
	$(BIN)/mbdpo-lab book --out runs/book

clean:
	rm -rf $(VENV) runs
