"""Snakemake adapter: the luminosity function of one catalogue (and, with an artificial-star
test, its counts corrected for completeness)."""

from astropy.table import Table

from clusterphot.logs import clean_failure, log_to
from clusterphot.plots import plot_luminosity_function

log_to(snakemake.log[0])
with clean_failure():
    table = Table.read(snakemake.input.catalog, format="ascii.ecsv")
    curve_path = snakemake.input.get("curve")
    curve = None if curve_path is None else Table.read(curve_path, format="ascii.ecsv")
    plot_luminosity_function(
        table,
        snakemake.output[0],
        snakemake.wildcards.cluster,
        snakemake.wildcards.filter,
        curve,
    )
