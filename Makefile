# One command each: `make md` runs a short MD simulation, `make test` runs the whole test suite.
# Both create the environment on first use (scripts/bootstrap.sh; cached under ~/.cache/orb-md).

.PHONY: md test bench

md:
	"$$(scripts/bootstrap.sh)" examples/quickstart_md.py

test:
	"$$(scripts/bootstrap.sh --lammps)" -m pytest

bench:
	"$$(scripts/bootstrap.sh --lammps)" benchmarks/run_all.py
