# One command each: `make md` runs a short MD simulation, `make test` runs the whole test suite.
# Both create the environment on first use (scripts/bootstrap.sh; cached under ~/.cache/orb-md).

.PHONY: md test

md:
	"$$(scripts/bootstrap.sh)" examples/quickstart_md.py

test:
	"$$(scripts/bootstrap.sh --lammps)" -m pytest -n auto --dist loadfile --no-loadscope-reorder
