# The two commands of the README: `make demo` and `make test`. Both create .venv if missing and
# install everything they need into it, as on a fresh machine.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO    ?= demo-output

.PHONY: install test lint demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/pytest -q

# Train the digits CNN, export it twice (two immutable versions) with fp16, dynamic-range and
# full-integer int8 TFLite variants, then show what was published.
demo: install
	rm -rf $(DEMO)
	$(BIN)/servectl export digits_cnn --base-path $(DEMO)/models --tflite fp16,dynamic,int8
	$(BIN)/servectl export digits_cnn --base-path $(DEMO)/models --tflite fp16,dynamic,int8 --seed 7
	$(BIN)/servectl inspect $(DEMO)/models/digits_cnn

clean:
	rm -rf $(VENV) $(DEMO) artifacts
