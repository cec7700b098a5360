# clusterphot: HST frames of star clusters in, calibrated catalogues and diagrams out.
# Run the demo with `snakemake --cores all`; your own frames with `--configfile mine.yaml`.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# The report (snakemake --report report.html) opens on the science: per cluster its composite,
# CMDs and summary table.
report: "workflow/report/workflow.rst"


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


# A run with failures ends with one line per failed job: its log and what went wrong.
onerror:
    from clusterphot.logs import failure_summary

    for line in failure_summary(log, list(CLUSTERS)):
        print(line, file=sys.stderr)


rule all:
    default_target: True
    input:
        all_outputs(),
