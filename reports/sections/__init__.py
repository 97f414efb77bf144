"""One module per section of the report, each with ``build(ctx) -> Section``; the
order of BUILDERS is the order of the page."""

from __future__ import annotations

from reports.sections import (appendix, coverage, drift, equivalence, gpu_compile, header, learning, models, noise,
                              roofline, routing, scaling, speedup, summary)

BUILDERS = (header.build, summary.build, speedup.build, roofline.build, scaling.build, noise.build, coverage.build,
            models.build, learning.build, routing.build, drift.build, equivalence.build, gpu_compile.build,
            appendix.build)
