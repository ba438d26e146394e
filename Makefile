# The two commands of the README. Each does its own setup (venv, jars, redis-server) first.
.PHONY: demo test setup lint

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/python -m scripts.demo

test: setup
	.venv/bin/ruff check .
	.venv/bin/mypy
	mvn -q -B -Dstyle.color=never -f udf/pom.xml test
	.venv/bin/python -m pytest

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
