"""Where every output goes: the path patterns that the rules, ``all_outputs`` and the tests use.

Wildcards: ``{cluster}``, ``{filter}``, and ``{blue}``-``{red}`` for a colour. The README's
output table documents each (with the rule that makes it); change a path here and nowhere else.
"""

# per frame
CATALOG = "results/catalogs/{cluster}/{filter}.ecsv"
# its cosmic rays (a header alone when none were looked for: cosmic_rays none, or auto on a stack)
COSMIC_RAY_MASK = "results/masks/{cluster}/{filter}_cosmic_rays.fits"
LUMINOSITY_FUNCTION = "results/plots/{cluster}/lf_{filter}.png"
DETECTION_MAP = "results/plots/{cluster}/detections_{filter}.png"

# per frame measured with PSF fitting (photometry.method: psf) only
PSF_MODEL = "results/psf/{cluster}/{filter}.fits"
PSF_FIGURE = "results/plots/{cluster}/psf_{filter}.png"
PSF_RESIDUAL = "results/psf/{cluster}/{filter}_residual.fits"  # with photometry.psf.write_residual

# per frame with an artificial-star test (artificial_stars.n_stars > 0)
COMPLETENESS_STARS = "results/completeness/{cluster}/{filter}.ecsv"
COMPLETENESS_CURVE = "results/completeness/{cluster}/{filter}_curve.ecsv"
COMPLETENESS_PLOT = "results/plots/{cluster}/completeness_{filter}.png"
# one job's share of a frame's artificial stars ({scatteritem}: "2-of-4"), gathered into the above
ARTIFICIAL_JOB = "results/completeness/{cluster}/jobs/{filter}_{scatteritem}.ecsv"

# per cluster
REGISTRATION = "results/matched/{cluster}/registration.yaml"
MATCHED = "results/matched/{cluster}/{blue}-{red}.ecsv"
CMD = "results/plots/{cluster}/cmd_{blue}-{red}.png"
# beside the per-filter catalogues: hence no filter may be called "merged"
MERGED_CATALOG = "results/catalogs/{cluster}/merged.ecsv"
SUMMARY = "results/summary/{cluster}.tsv"
# the cluster on one page (composite, CMDs, summary table): what the report opens on
CLUSTER_PAGE = "results/summary/{cluster}.html"
LUPTON_RGB = "results/rgb/{cluster}_lupton.png"
WEIGHTED_RGB = "results/rgb/{cluster}_weighted.png"
LUPTON_PREVIEW = "results/rgb/{cluster}_lupton_preview.png"
WEIGHTED_PREVIEW = "results/rgb/{cluster}_weighted_preview.png"
COMPOSITE_PROVENANCE = "results/rgb/{cluster}_composite.yaml"

# inputs the workflow makes or keeps
DEMO_FRAME = "results/demo/{cluster}/{filter}.fits"
DEMO_TRUTH = "results/demo/{cluster}/{filter}_truth.ecsv"
FETCHED_FRAME = "resources/frames/{cluster}/{filter}.fits"  # a frame given by URL, kept

PER_FRAME = (CATALOG, LUMINOSITY_FUNCTION, DETECTION_MAP)
PER_PSF_FRAME = (PSF_MODEL, PSF_FIGURE)
PER_COMPLETENESS_FRAME = (COMPLETENESS_STARS, COMPLETENESS_CURVE, COMPLETENESS_PLOT)
PER_COLOUR = (MATCHED, CMD)
COMPOSITES = (LUPTON_RGB, WEIGHTED_RGB, LUPTON_PREVIEW, WEIGHTED_PREVIEW, COMPOSITE_PROVENANCE)
# words a filter may not be called: its per-frame outputs would land on a per-cluster one
RESERVED_FILTER_NAMES = ("merged",)
