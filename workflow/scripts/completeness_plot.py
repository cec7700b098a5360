"""Snakemake adapter: a frame's completeness and photometric error from its artificial stars."""

from astropy.table import Table

from clusterphot.logs import clean_failure, log_to
from clusterphot.plots import plot_completeness

log_to(snakemake.log[0])
with clean_failure():
    plot_completeness(
        Table.read(snakemake.input.stars, format="ascii.ecsv"),
        Table.read(snakemake.input.curve, format="ascii.ecsv"),
        snakemake.output[0],
        snakemake.wildcards.cluster,
        snakemake.wildcards.filter,
    )
