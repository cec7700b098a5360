# clusterphot: HST frames of star clusters in, calibrated catalogues and diagrams out.
# Run the demo with `snakemake --cores all`; your own frames with `--configfile mine.yaml`.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/photometry.smk"
include: "workflow/rules/crossmatch.smk"
include: "workflow/rules/completeness.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/composite.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        all_outputs(),
