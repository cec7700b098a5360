"""Snakemake adapter: per-filter star counts and magnitude ranges of one cluster."""

from clusterphot.crossmatch import read_catalogs
from clusterphot.logs import clean_failure, log_to
from clusterphot.summary import summarize_catalogs, write_summary_tsv

log_to(snakemake.log[0])
with clean_failure():
    catalogs = read_catalogs(snakemake.params.filters, snakemake.input.catalogs)
    write_summary_tsv(summarize_catalogs(catalogs), snakemake.output[0])
