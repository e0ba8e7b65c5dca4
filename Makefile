# The README's two commands: `make demo` and `make test`. Both set everything up first (idempotent).
PY := .venv/bin/python

.PHONY: setup demo test
setup:
	scripts/setup_host.sh

demo: setup
	$(PY) scripts/demo.py

test: setup
	scripts/setup_browser.sh
	$(PY) -m pytest -q -p no:cacheprovider tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected: failing"; exit 1; fi; exit $$rc
