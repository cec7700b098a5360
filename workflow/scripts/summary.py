"""Snakemake adapter: per-filter star counts and magnitude ranges of one cluster."""

from astropy.table import Table

from clusterphot.crossmatch import read_catalogs
from clusterphot.logs import clean_failure, log_to
from clusterphot.summary import summarize_catalogs, write_summary_tsv

log_to(snakemake.log[0])
with clean_failure():
    catalogs = read_catalogs(snakemake.params.filters, snakemake.input.catalogs)
    curves = {
        name: Table.read(path, format="ascii.ecsv")
        for name, path in zip(snakemake.params.filters, snakemake.input.curves)
    }
    write_summary_tsv(summarize_catalogs(catalogs, curves), snakemake.output[0])
