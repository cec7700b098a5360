"""Snakemake adapter: per-filter star counts and magnitude ranges of one cluster."""

from astropy.table import Table

from clusterphot.logs import clean_failure, log_to
from clusterphot.summary import summarize_catalogs, write_summary_tsv

log_to(snakemake.log[0])
with clean_failure():
    catalogs = {
        name: Table.read(path, format="ascii.ecsv")
        for name, path in snakemake.input.items()
    }
    write_summary_tsv(summarize_catalogs(catalogs), snakemake.output[0])
