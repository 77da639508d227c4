"""`python -m benchmarks` = `python -m benchmarks.run`."""

from benchmarks.run import main

main()
