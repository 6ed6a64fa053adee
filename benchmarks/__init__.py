"""vlsurgery's benchmarks: ratios against baselines measured in the same run (see README.md here).

Entry point: ``python -m benchmarks.run [--quick] [--json PATH]``; the GPU step: ``python -m
benchmarks.gpu_step``.
"""
