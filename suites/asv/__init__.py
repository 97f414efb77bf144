"""asv benchmark suite (benchmark_dir of asv.conf.json)."""
