"""The benchmark suite behind ``benchmarks/run.py``, one module per part:

- ``impls``: the implementations compared, and the betterall under test;
- ``shapes``: the graph shapes, each built for every implementation;
- ``timing``: interleaved repetitions, medians, loop iterations per call;
- ``tracing``: what ``debug=`` costs the C engine;
- ``classform``: the class form against the dict form;
- ``makespan``: a handler's wall time against its critical path;
- ``memory``: tracemalloc peaks, retained bytes, peak RSS;
- ``output``: the loop, the machine description and the tables;
- ``targets``: the targets each run checks against its own numbers.

See docs/performance-log.md for what each measures.
"""
