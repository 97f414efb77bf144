"""One module per section of the report, each with ``build(ctx) -> Section``; the
order of BUILDERS is the order of the page."""

from __future__ import annotations

from reports.sections import (appendix, bakeoff, coverage, drift, equivalence, gpu_compile, header, ladder, learning,
                              models, noise, overhead, roofline, routing, scaling, speedup, summary, thinking)

BUILDERS = (header.build, summary.build, speedup.build, roofline.build, scaling.build, noise.build, coverage.build,
            models.build, learning.build, bakeoff.build, ladder.build, routing.build, thinking.build, drift.build,
            overhead.build, equivalence.build, gpu_compile.build, appendix.build)
